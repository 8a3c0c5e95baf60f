// Network namespace helpers shared by the browser tests that need root
// (see /work/shared/TESTING-NOTES.md); `twoHosts()` (helpers.mjs) makes
// the namespaces.
import { execFileSync } from 'node:child_process';
import { haveCommand, sumMetric } from './helpers.mjs';

/**
 * Drops every UDP packet sent from inside namespace `ns` (a network that
 * allows only TCP out), with nftables (`nft`), else iptables. Returns the
 * tool used and `count()`, the packets the rule dropped so far (nft only;
 * NaN with iptables).
 */
export function blockUdp(ns) {
  const inNs = (...a) => execFileSync('ip', ['netns', 'exec', ns, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (haveCommand('nft')) {
    inNs('nft', 'add', 'table', 'inet', 'salon_block');
    inNs('nft', 'add', 'chain', 'inet', 'salon_block', 'out', '{ type filter hook output priority 0; policy accept; }');
    inNs('nft', 'add', 'rule', 'inet', 'salon_block', 'out', 'meta', 'l4proto', 'udp', 'counter', 'drop');
    const count = () => {
      const m = /counter packets (\d+)/.exec(inNs('nft', 'list', 'chain', 'inet', 'salon_block', 'out'));
      return Number(m?.[1] ?? 'NaN');
    };
    return { tool: 'nft', count };
  }
  if (haveCommand('iptables')) {
    inNs('iptables', '-A', 'OUTPUT', '-p', 'udp', '-j', 'DROP');
    return { tool: 'iptables', count: () => NaN };
  }
  throw new Error('neither nft nor iptables is installed (apt-get install nftables)');
}

/**
 * A counter from `/metrics` of a salon running inside namespace `ns` (its
 * admin listener is that namespace's loopback, out of this process's
 * reach): read by a node process started in the namespace, summed over
 * its series (a per-worker gauge). NaN if absent.
 */
export function metricIn(ns, salon, name) {
  const script = 'fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t))';
  const text = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script, `${salon.adminUrl}metrics`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 10_000,
  });
  return sumMetric(text, name);
}

/**
 * A network namespace of its own (`lo` up, IPv6 on) with a veth pair
 * carrying two unique local addresses, `<prefix>::a` (the server's) and
 * `<prefix>::b` (no duplicate address detection: usable at once); deleted
 * after test `t`. Chromium gathers no candidate on `::1`, so IPv6 media is
 * tested on these. Needs root.
 */
export function ulaNamespace(t, name, prefix) {
  const ns = `${name}-${process.pid}`;
  const inNs = (...a) => execFileSync('ip', ['netns', 'exec', ns, ...a]);
  execFileSync('ip', ['netns', 'add', ns]);
  t.after(() => execFileSync('ip', ['netns', 'delete', ns]));
  inNs('ip', 'link', 'set', 'lo', 'up');
  inNs('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0');
  inNs('ip', 'link', 'add', 'v6s', 'type', 'veth', 'peer', 'name', 'v6b');
  inNs('ip', 'addr', 'add', `${prefix}::a/64`, 'dev', 'v6s', 'nodad');
  inNs('ip', 'addr', 'add', `${prefix}::b/64`, 'dev', 'v6b', 'nodad');
  inNs('ip', 'link', 'set', 'v6s', 'up');
  inNs('ip', 'link', 'set', 'v6b', 'up');
  return ns;
}
