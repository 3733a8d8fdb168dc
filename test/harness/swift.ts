// Starts a real OpenStack Swift (Debian's packages) on loopback with the s3api
// middleware, so object-store tests talk to a real S3 endpoint.
//
// What we learned making it start in ~1.5 s on a fresh Debian 12 (swift 2.30):
// - Every Swift process reads /etc/swift/swift.conf (the hash prefix/suffix and
//   storage policies) from a path hard-coded in swift.common.utils, whatever
//   `swift_dir` says; `swift_dir` only moves the rings. So the servers run through
//   a small Python wrapper (RUNNER below) that points utils.SWIFT_CONF_FILE at our
//   own swift.conf and reloads policies/constraints before importing the server.
//   Nothing under /etc is read or written.
// - It must be Debian's /usr/bin/python3: a python3 earlier on PATH (pyenv,
//   /usr/local) does not see the `swift` package.
// - Swift drops privileges to `user` (default `swift`, which Debian creates);
//   as root that user could not write our 0700 temp dir, so `user` is whoever
//   runs the tests (root included; Swift accepts that when it is said).
// - The object server keeps metadata in user xattrs: the devices dir must be on a
//   filesystem with them (ext4/xfs/btrfs; tmpfs before Linux 6.6 has none). We
//   try the temp dir, then /var/tmp, and say so clearly if neither works; no
//   loop-mounted images (they need privileges and can outlive a crashed test).
//   `mount_check = false` because the device is a plain directory.
// - Rings are built in one Python process with RingBuilder (the library behind
//   swift-ring-builder): nine swift-ring-builder runs cost ~5 s, this ~0.5 s.
// - `workers = 0` runs each server in one process (no forked workers that would
//   survive a SIGKILL of their parent, and faster start). Each server calls
//   setsid(), so the wrapper also exits by itself when the test process that
//   spawned it is gone (it polls getppid), instead of lingering on its port.
// - tempauth needs a `cache` middleware in the pipeline (it raises "Memcache
//   required" otherwise) but no memcached: S3 signatures are checked against its
//   configured users on every request. Swift's own `memcache` filter with no
//   server logs errors and, worse, caches nothing, so every S3 request also
//   HEADs the account and the container (1100 PUTs took 11 s instead of 6 s);
//   and a memcached that happens to run on 11211 would share cached
//   account/container info between test instances. So `cache` is a dict-backed
//   filter defined in RUNNER: the proxy is one process (workers = 0), so one
//   dict is as coherent as memcached would be.
// - EVENTLET_NO_GREENDNS=yes: eventlet otherwise imports dnspython at start,
//   which doubled each process's start-up (we only ever use IP addresses).
// - Without /dev/log, Swift logs by syslog-over-UDP to localhost:514 (lost). We
//   set log_udp_host/port to a UDP socket of ours that appends to swift.log in
//   the temp dir; stdout/stderr (errors before logging is set up, e.g. a bad
//   config) go to <server>.out there too.
// - s3api: with tempauth, the S3 access key is `account:user` and the secret is
//   the password; `location` is the region SigV4 requests must be scoped to.
//   account_autocreate creates the account on first use.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { appendFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface SwiftS3 {
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The temp dir holding configs, the device and logs (removed by stop()). */
  readonly dir: string;
  stop(): Promise<void>;
}

const PYTHON = '/usr/bin/python3';
// eventlet's green DNS imports dnspython, ~1 s of CPU per process; every address here is an IP.
const PY_ENV = { ...process.env, EVENTLET_NO_GREENDNS: 'yes' };
const REGION = 'us-east-1';
const SERVERS = ['object-server', 'container-server', 'account-server', 'proxy-server'] as const;
type ServerName = (typeof SERVERS)[number];

// `setup` builds the rings and checks xattrs; `serve` runs one server with our swift.conf.
const RUNNER = String.raw`
import json, os, sys, threading, time, types
from swift.common import utils
mode, swift_dir = sys.argv[1], sys.argv[2]
utils.SWIFT_CONF_FILE = os.path.join(swift_dir, 'swift.conf')
from swift.common import storage_policy, constraints
storage_policy.reload_storage_policies()
constraints.reload_constraints()
if mode == 'setup':
    devices = sys.argv[3]
    probe = os.path.join(devices, '.xattr-probe')
    open(probe, 'w').close()
    try:
        os.setxattr(probe, 'user.swift.probe', b'1')
    except OSError as e:
        sys.stderr.write('no user xattrs on %s: %s\n' % (devices, e))
        sys.exit(3)
    os.unlink(probe)
    from swift.common.ring import RingBuilder
    for spec in sys.argv[4:]:
        kind, port = spec.split('=')
        b = RingBuilder(6, 1, 1)
        b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1',
                   'port': int(port), 'device': 'd1', 'weight': 1.0, 'meta': ''})
        b.rebalance()
        b.save(os.path.join(swift_dir, kind + '.builder'))
        b.get_ring().save(os.path.join(swift_dir, kind + '.ring.gz'))
    sys.exit(0)
server, conf = sys.argv[3], sys.argv[4]
parent, getppid, sleep, exit_now = os.getppid(), os.getppid, time.sleep, os._exit
def watch_parent():
    while getppid() == parent:
        sleep(0.5)
    exit_now(0)
threading.Thread(target=watch_parent, daemon=True).start()
class DictCache(object):
    # The MemcacheRing calls Swift makes, on a dict. Values go through JSON as
    # they would through memcached, so callers never share mutable objects.
    def __init__(self):
        self.d = {}
    def _live(self, key):
        item = self.d.get(key)
        if item is not None and item[0] and item[0] < time.time():
            del self.d[key]
            item = None
        return item
    def get(self, key, *args, **kwargs):
        item = self._live(key)
        return None if item is None else json.loads(item[1])
    def set(self, key, value, serialize=True, time=0, *args, **kwargs):
        self.d[key] = (_expiry(time), json.dumps(value))
    def incr(self, key, delta=1, time=0, *args, **kwargs):
        item = self._live(key)
        value = max(0, int(json.loads(item[1]) if item else 0) + int(delta))
        self.d[key] = (item[0] if item else _expiry(time), json.dumps(value))
        return value
    def decr(self, key, delta=1, time=0, *args, **kwargs):
        return self.incr(key, -delta, time)
    def delete(self, key, *args, **kwargs):
        self.d.pop(key, None)
    def get_multi(self, keys, server_key=None, *args, **kwargs):
        return [self.get(k) for k in keys]
    def set_multi(self, mapping, server_key=None, serialize=True, time=0, *args, **kwargs):
        for k, v in mapping.items():
            self.set(k, v, time=time)
def _expiry(ttl):
    return time.time() + ttl if ttl else 0
def cache_filter_factory(global_conf, **local_conf):
    cache = DictCache()
    def make(app):
        def middleware(env, start_response):
            env['swift.cache'] = cache
            return app(env, start_response)
        return middleware
    return make
sys.modules['bulwark_swift_cache'] = types.SimpleNamespace(filter_factory=cache_filter_factory)
from swift.common.wsgi import run_wsgi
kwargs = {}
if server == 'object-server':
    from swift.obj import server as obj_server
    kwargs['global_conf_callback'] = obj_server.global_conf_callback
sys.exit(run_wsgi(conf, server, **kwargs))
`;

/** Why Swift cannot be started here, or undefined when it can. */
export function swiftUnavailableReason(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is missing`;
  for (const bin of ['swift-proxy-server', 'swift-object-server', 'swift-container-server', 'swift-account-server']) {
    if (!existsSync(`/usr/bin/${bin}`)) return `/usr/bin/${bin} is missing: run scripts/install-deps.sh (Debian package swift-*)`;
  }
  return undefined;
}

function run(args: string[], log: string): Promise<{ code: number; output: string }> {
  return new Promise((resolveRun) => {
    execFile(PYTHON, args, { timeout: 30_000, env: PY_ENV }, (err, stdout, stderr) => {
      appendFileSync(log, stdout + stderr);
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolveRun({ code, output: stdout + stderr });
    });
  });
}

function ini(sections: Record<string, Record<string, string | number>>): string {
  return Object.entries(sections)
    .map(([name, kv]) => `[${name}]\n${Object.entries(kv).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`)
    .join('\n');
}

/** Makes the dir tree on a filesystem with user xattrs and builds the rings. */
async function prepare(ports: Record<ServerName, number>): Promise<string> {
  const reasons: string[] = [];
  for (const base of [tmpdir(), '/var/tmp']) {
    const dir = mkdtempSync(join(base, 'bulwark-swift-'));
    const etc = join(dir, 'etc');
    mkdirSync(etc);
    mkdirSync(join(dir, 'srv', 'd1'), { recursive: true });
    writeFileSync(join(dir, 'runner.py'), RUNNER);
    writeFileSync(
      join(etc, 'swift.conf'),
      ini({
        'swift-hash': { swift_hash_path_suffix: randomBytes(12).toString('hex'), swift_hash_path_prefix: randomBytes(12).toString('hex') },
        'storage-policy:0': { name: 'Policy-0', default: 'yes' },
      }),
    );
    const setup = await run(
      [join(dir, 'runner.py'), 'setup', etc, join(dir, 'srv'),
        `object=${ports['object-server']}`, `container=${ports['container-server']}`, `account=${ports['account-server']}`],
      join(dir, 'setup.log'),
    );
    if (setup.code === 0) return dir;
    rmSync(dir, { recursive: true, force: true });
    if (setup.code !== 3) throw new Error(`swift ring setup failed: ${setup.output.trim()}`);
    reasons.push(setup.output.trim());
  }
  throw new Error(`Swift needs user xattrs on its devices dir and no candidate has them: ${reasons.join('; ')}`);
}

function writeConfigs(dir: string, ports: Record<ServerName, number>, logPort: number, password: string): void {
  const common = (name: ServerName): Record<string, string | number> => ({
    bind_ip: '127.0.0.1',
    bind_port: ports[name],
    workers: 0,
    user: userInfo().username,
    swift_dir: join(dir, 'etc'),
    devices: join(dir, 'srv'),
    mount_check: 'false',
    disable_fallocate: 'true',
    log_name: name,
    log_level: 'INFO',
    log_udp_host: '127.0.0.1',
    log_udp_port: logPort,
  });
  const backend = (name: ServerName, egg: string): string =>
    ini({
      DEFAULT: common(name),
      'pipeline:main': { pipeline: `healthcheck ${name}` },
      'filter:healthcheck': { use: 'egg:swift#healthcheck' },
      [`app:${name}`]: { use: `egg:swift#${egg}` },
    });
  writeFileSync(join(dir, 'etc', 'object-server.conf'), backend('object-server', 'object'));
  writeFileSync(join(dir, 'etc', 'container-server.conf'), backend('container-server', 'container'));
  writeFileSync(join(dir, 'etc', 'account-server.conf'), backend('account-server', 'account'));
  const filters = ['catch_errors', 'gatekeeper', 'healthcheck', 'proxy-logging', 'cache', 'listing_formats', 'bulk', 'tempurl',
    'ratelimit', 's3api', 'tempauth', 'copy', 'container-quotas', 'account-quotas', 'slo', 'dlo', 'versioned_writes'];
  const filterSections: Record<string, Record<string, string | number>> = {};
  // Entry points are the filter names with '_' for '-'.
  for (const f of filters) filterSections[`filter:${f}`] = { use: `egg:swift#${f.replace(/-/g, '_')}` };
  filterSections['filter:cache'] = { 'paste.filter_factory': 'bulwark_swift_cache:filter_factory' };
  // Only to keep the sha1 deprecation warning out of the log; nothing here uses tempurl.
  filterSections['filter:tempurl'] = { use: 'egg:swift#tempurl', allowed_digests: 'sha256 sha512' };
  filterSections['filter:s3api'] = { use: 'egg:swift#s3api', location: REGION };
  filterSections['filter:tempauth'] = { use: 'egg:swift#tempauth', user_bulwark_s3: `${password} .admin` };
  writeFileSync(
    join(dir, 'etc', 'proxy-server.conf'),
    ini({
      DEFAULT: common('proxy-server'),
      'pipeline:main': { pipeline: [...filters, 'proxy-logging', 'proxy-server'].join(' ') },
      'app:proxy-server': { use: 'egg:swift#proxy', account_autocreate: 'true', allow_account_management: 'true' },
      ...filterSections,
    }),
  );
}

async function syslogSink(file: string): Promise<{ port: number; close(): Promise<void> }> {
  const out = createWriteStream(file, { flags: 'a' });
  const socket = createSocket('udp4');
  // Each datagram is one line: "<priority>name: message\0".
  socket.on('message', (msg) => out.write(msg.toString().replace(/^<\d+>/, '').replace(/\0$/, '') + '\n'));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return {
    port: socket.address().port,
    async close() {
      await new Promise<void>((r) => socket.close(() => r()));
      await new Promise<void>((r) => out.end(r));
    },
  };
}

async function waitHealthy(url: string, child: ChildProcess, name: string, dir: string, deadline: number): Promise<void> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const out = readFileSync(join(dir, `${name}.out`), 'utf8').trim().split('\n').slice(-15).join('\n');
      throw new Error(`swift ${name} exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${out}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`swift ${name} not healthy at ${url} within 30 s (logs in ${dir})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(t);
}

export async function startSwift(): Promise<SwiftS3> {
  const missing = swiftUnavailableReason();
  if (missing) throw new Error(`cannot start Swift: ${missing}`);
  const ports = {} as Record<ServerName, number>;
  const taken = new Set<number>();
  for (const s of SERVERS) {
    // freePort closes its probe socket, so the kernel may hand the same port out twice.
    let port = await freePort();
    while (taken.has(port)) port = await freePort();
    taken.add(port);
    ports[s] = port;
  }
  const dir = await prepare(ports);
  const password = randomBytes(18).toString('base64url');
  const log = await syslogSink(join(dir, 'swift.log'));
  writeConfigs(dir, ports, log.port, password);

  const children: ChildProcess[] = [];
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> => (stopping ??= stopEverything());
  const stopEverything = async (): Promise<void> => {
    await Promise.all(children.map(stopChild));
    await log.close();
  };
  try {
    const deadline = Date.now() + 30_000;
    const started = SERVERS.map((name) => {
      const out = openSync(join(dir, `${name}.out`), 'a');
      const child = spawn(PYTHON, [join(dir, 'runner.py'), 'serve', join(dir, 'etc'), name, join(dir, 'etc', `${name}.conf`)], {
        stdio: ['ignore', out, out],
        env: PY_ENV,
      });
      closeSync(out);
      children.push(child);
      return { name, child };
    });
    await Promise.all(started.map(({ name, child }) => waitHealthy(`http://127.0.0.1:${ports[name]}/healthcheck`, child, name, dir, deadline)));
  } catch (err) {
    await stopAll();
    throw err;
  }
  return {
    endpoint: `http://127.0.0.1:${ports['proxy-server']}`,
    region: REGION,
    accessKeyId: 'bulwark:s3',
    secretAccessKey: password,
    dir,
    async stop() {
      await stopAll();
      if (process.env.BULWARK_KEEP_SWIFT !== '1') rmSync(dir, { recursive: true, force: true });
    },
  };
}
