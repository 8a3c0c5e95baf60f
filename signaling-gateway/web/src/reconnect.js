// Reconnect after a dropped signaling socket (protocol: docs/signaling.md,
// "Reconnect"): the resume token, kept per room in sessionStorage so that a
// reload of the page within the grace period resumes too, and the retry
// schedule. No DOM.

const key = (room) => `salon.resume.${room}`;

/** Keeps the latest resume token (and our name) for this tab and room. */
export function saveResume(room, token, name) {
  if (typeof token !== 'string' || !token) return;
  try {
    sessionStorage.setItem(key(room), JSON.stringify({ token, name }));
  } catch {
    // Storage refused (private mode quotas): a reload will join afresh.
  }
}

/** The saved `{token, name}` for this room, or null. */
export function loadResume(room) {
  try {
    const v = JSON.parse(sessionStorage.getItem(key(room)) ?? 'null');
    if (v && typeof v.token === 'string' && typeof v.name === 'string') return v;
  } catch {
    // Unreadable: as if there were none.
  }
  return null;
}

/** Forgets the token (left, kicked, ended, refused). */
export function forgetResume(room) {
  try {
    sessionStorage.removeItem(key(room));
  } catch {
    // Nothing to forget.
  }
}

/** Delay before retry `attempt` (0-based): 0.5 s doubling up to 5 s, ±25 % jitter. */
export function backoffMs(attempt, random = Math.random) {
  const base = Math.min(5_000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.75 + 0.5 * random()));
}

/** How long the client keeps trying: the gateway's default grace period. */
export const RETRY_FOR_MS = 30_000;

// The lobby token of the `lobby` message (docs/signaling.md, "Lobby"): a
// reload, or a new socket after a network blink, sends it again in `join`
// to keep our place in the queue within the grace period (and a deny's
// cooldown follows it).
const lobbyKey = (room) => `salon.lobby.${room}`;

/** Keeps the lobby token (and our name) for this tab and room. */
export function saveLobby(room, token, name) {
  if (typeof token !== 'string' || !token) return;
  try {
    sessionStorage.setItem(lobbyKey(room), JSON.stringify({ token, name }));
  } catch {
    // Storage refused: a reload knocks again at the back of the queue.
  }
}

/** The saved `{token, name}` of our lobby place in this room, or null. */
export function loadLobby(room) {
  try {
    const v = JSON.parse(sessionStorage.getItem(lobbyKey(room)) ?? 'null');
    if (v && typeof v.token === 'string' && typeof v.name === 'string') return v;
  } catch {
    // Unreadable: as if there were none.
  }
  return null;
}

/** Forgets the lobby token (in the meeting, left, ended). */
export function forgetLobby(room) {
  try {
    sessionStorage.removeItem(lobbyKey(room));
  } catch {
    // Nothing to forget.
  }
}
