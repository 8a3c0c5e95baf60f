// Chat text → DOM nodes: text nodes, and links built with DOM APIs from a
// strict URL parse (http/https only, no credentials). Never fetched: no
// previews, no images (Jitsi's CVE-2024-44080 leaked addresses that way).

const CANDIDATE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}»]+$/;

/** The URL if `text` is a safe http(s) link, else null. */
export function safeUrl(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if (url.username || url.password) return null;
  return url;
}

/** Appends `text` to `parent` as text nodes and safe links. */
export function appendLinkified(parent, text) {
  let last = 0;
  for (const m of text.matchAll(CANDIDATE)) {
    let raw = m[0];
    const trail = raw.match(TRAILING);
    if (trail) raw = raw.slice(0, -trail[0].length);
    const url = safeUrl(raw);
    if (!url) continue;
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    const a = document.createElement('a');
    a.href = url.href;
    a.rel = 'noopener noreferrer nofollow';
    a.target = '_blank';
    a.referrerPolicy = 'no-referrer';
    a.textContent = raw;
    parent.append(a);
    last = m.index + raw.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}
