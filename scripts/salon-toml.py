#!/usr/bin/env python3
# Regenerates deploy/salon.toml from `salon --help` (run after adding a flag):
#   cargo build -p salon-gateway --bin salon && python3 scripts/salon-toml.py target/debug/salon > deploy/salon.toml
# signaling-gateway/tests/config.rs checks that the sample names every flag.
import re, subprocess, textwrap, sys
out = subprocess.run([sys.argv[1], '--help'], capture_output=True, text=True).stdout
opts = out.split('Options:')[1]
entries = []
cur = None
for line in opts.split('\n'):
    m = re.match(r'^\s{2,6}(?:-\w, )?--([a-z0-9-]+)(?: <[^>]+>)?\s*$', line)
    if m:
        cur = {'name': m.group(1), 'help': ''}
        entries.append(cur)
    elif cur is not None and line.strip():
        cur['help'] += ' ' + line.strip()
uncommented = {
    'listen': '"127.0.0.1:8080"',
    'media-ip': '"203.0.113.10"',
    'allowed-host': '["visio.example.fr"]',
    'trusted-proxy': '["127.0.0.1"]',
    'max-connections-per-ip': '0',
    'max-http-per-ip': '0',
    'policy': '"/etc/salon/lua/policy.lua"',
    'auth-config': '"/etc/salon/auth.toml"',
    'brand-name': '"Visio de la Ville"',
}
lines = ["""# salon.toml — Salon's configuration, one key per command-line flag.
#
#   salon --config /etc/salon/salon.toml
#   salon config check --config /etc/salon/salon.toml   # validate, print the effective values
#
# Precedence, lowest first: built-in default < this file < environment
# variable SALON_<FLAG> (e.g. SALON_MEDIA_PORT=10000) < command-line flag.
# Keys are the flags' names (`media-port`, or `media_port`); values are
# TOML strings, integers or booleans, and arrays for repeatable flags.
# An unknown key or a value the flag refuses stops salon at start-up with
# this file's name and the line. Secrets are never printed by
# `config check` (key material lives in files: see auth-config).
#
# The values left uncommented below are a single-server production set-up
# behind nginx (docs/deploy.md); every other line shows the default.
"""]
for e in entries:
    name = e['name']
    if name in ('config', 'help', 'version'):
        continue
    h = e['help'].strip()
    m = re.search(r'\s*\[env: ([A-Z_]+)=\]', h)
    env = m.group(1) if m else None
    h = re.sub(r'\s*\[env: [A-Z_]+=\]', '', h)
    m = re.search(r'\s*\[default: ([^\]]*)\]', h)
    default = m.group(1) if m else None
    h = re.sub(r'\s*\[default: [^\]]*\]', '', h)
    h = re.sub(r'\s*\[possible values: [^\]]*\]', '', h)
    lines.append('')
    for l in textwrap.wrap(h, 74):
        lines.append('# ' + l)
    if env:
        lines.append(f'# Environment: {env}')
    if name in uncommented:
        lines.append(f'{name} = {uncommented[name]}')
    elif default is None:
        lines.append(f'#{name} =')
    else:
        # clap already quotes a default that holds spaces.
        quoted = len(default) >= 2 and default[0] == default[-1] == '"'
        v = default if quoted or re.fullmatch(r'-?\d+|true|false', default) else '"' + default + '"'
        lines.append(f'#{name} = {v}')
print('\n'.join(lines))
