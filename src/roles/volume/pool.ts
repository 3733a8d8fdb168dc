// One storage pool on this host: a directory of qcow2 layers opened by one
// qemu-storage-daemon that this process supervises. The state store is the
// source of truth for the graph; QSD's graph is rebuilt from it at every start.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { acquireFileLock, type HeldLock } from '../../coordination/file-lock.js';
import type { PoolConfig } from '../../config/schema.js';
import { QsdDaemon } from '../../drivers/qsd/daemon.js';
import { closeLayer, listExports, listOpenNodes, openLayer, addExport, writePskKeys } from '../../drivers/qsd/images.js';
import type { QmpConnection } from '../../drivers/qmp/connection.js';
import type { Store } from '../../store/db.js';
import { supportsDirectIo } from '../../util/direct-write.js';
import type { Logger } from '../../util/log.js';
import { layersOf, topoOrder } from './layer-store.js';

export interface PoolRuntimeOptions {
  readonly store: Store;
  readonly pool: PoolConfig;
  readonly hostname: string;
  readonly qsdBinary: string;
  readonly qmpTimeoutMs: number;
  readonly nbdTcp: { host: string; port: number };
  readonly log: Logger;
}

export type PoolState = 'starting' | 'running' | 'recovering' | 'stopped' | 'failed';

export class PoolRuntime {
  /** Cinder's host string for volumes in this pool: host@backend#pool. */
  readonly host: string;
  readonly serviceHost: string;
  readonly dir: string;
  private daemon: QsdDaemon | null = null;
  private lock: HeldLock | null = null;
  private stateValue: PoolState = 'starting';
  private exitListeners: Array<() => void> = [];
  /** Layers bypass the host page cache (pool `cache`, resolved at start). */
  directIo = false;

  constructor(private readonly opts: PoolRuntimeOptions) {
    this.serviceHost = `${opts.hostname}@${opts.pool.name}`;
    this.host = `${this.serviceHost}#${opts.pool.name}`;
    this.dir = resolve(opts.pool.path);
  }

  get state(): PoolState {
    return this.stateValue;
  }

  get qmp(): QmpConnection {
    if (!this.daemon || this.stateValue !== 'running') throw new Error(`pool ${this.opts.pool.name} is ${this.stateValue}`);
    return this.daemon.qmp;
  }

  get nbdSocketPath(): string {
    return join(this.dir, 'run', 'nbd.sock');
  }

  layerPath(layerId: string): string {
    return join(this.dir, 'layers', `${layerId}.qcow2`);
  }

  /** The TLS-PSK identity and key for NBD over TCP, made once per pool (0600). */
  pskCredentials(): { identity: string; key: string; dir: string } {
    const dir = join(this.dir, 'tls');
    const keyFile = join(dir, 'key.hex');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!existsSync(keyFile)) writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const key = readFileSync(keyFile, 'utf8').trim();
    writePskKeys(dir, 'bulwark', key);
    return { identity: 'bulwark', key, dir };
  }

  onDaemonExit(cb: () => void): void {
    this.exitListeners.push(cb);
  }

  /** Takes the pool lock (once) and brings QSD up; true when QSD is fresh. */
  async start(): Promise<boolean> {
    for (const sub of ['layers', 'run']) mkdirSync(join(this.dir, sub), { recursive: true, mode: 0o700 });
    this.lock ??= acquireFileLock(join(this.dir, 'run', 'pool.lock'));
    const cache = this.opts.pool.cache;
    this.directIo = cache === 'none' || (cache === 'auto' && (await supportsDirectIo(join(this.dir, 'layers'))));
    if (cache === 'auto' && !this.directIo) this.opts.log.warn({ pool: this.opts.pool.name }, 'the pool filesystem refuses O_DIRECT: layers are opened through the page cache');
    return this.bringUpDaemon();
  }

  /** Forgets the daemon connection (after a failed start) without stopping QSD. */
  detachDaemon(): void {
    void this.daemon?.detach();
    this.daemon = null;
    this.stateValue = 'starting';
  }

  /** (Re)connects to this pool's QSD, starting it if it is not running. Returns
   *  true when the daemon is fresh (its graph is empty and must be rebuilt). */
  async bringUpDaemon(): Promise<boolean> {
    const run = join(this.dir, 'run');
    const { daemon, attached } = await QsdDaemon.attachOrStart({
      binary: this.opts.qsdBinary,
      pidFile: join(run, 'qsd.pid'),
      qmpSocket: join(run, 'qmp.sock'),
      nbdSocket: this.nbdSocketPath,
      qmpTimeoutMs: this.opts.qmpTimeoutMs,
    });
    this.daemon = daemon;
    this.opts.log.info({ pool: this.opts.pool.name, qsdPid: daemon.pid, attached }, attached ? 'attached to running qemu-storage-daemon' : 'started qemu-storage-daemon');
    daemon.onExit(() => {
      if (this.stateValue === 'stopped') return;
      this.stateValue = 'recovering';
      this.opts.log.error({ pool: this.opts.pool.name }, 'qemu-storage-daemon died');
      for (const l of this.exitListeners) l();
    });
    this.stateValue = 'running';
    return !attached;
  }

  /** Opens every layer the store knows, parents first, with explicit backing
   *  nodes. On a fresh daemon the overlays of interrupted snapshot switches are
   *  opened on their backing too, so that they can be rolled forward. */
  async openLayers(fresh: boolean): Promise<void> {
    const qmp = this.qmp;
    const layers = await layersOf(this.opts.store.db, this.host);
    const open = await listOpenNodes(qmp);
    for (const layer of topoOrder(layers)) {
      if (layer.state === 'deleting' || open.has(layer.id)) continue;
      if (layer.state === 'creating') {
        const switchOverlay = /^(snapshot|clone):/.test(layer.pending_for ?? '');
        if (!fresh || !switchOverlay || !existsSync(layer.path)) continue;
      }
      if (!existsSync(layer.path)) throw new Error(`layer ${layer.id} is missing its file ${layer.path}`);
      try {
        await openLayer(qmp, { layerId: layer.id, path: layer.path, backingLayerId: layer.backing_layer_id, directIo: this.directIo });
      } catch (err) {
        // A half-created file of an unfinished creation: its job will make it again.
        if (layer.state !== 'creating') throw err;
        this.opts.log.warn({ layer: layer.id, err: String(err) }, 'unusable file of an unfinished layer');
      }
    }
  }

  /** Files in the pool that no layer row owns are leftovers of a crash between
   *  creating a file and recording it (never the other way round): removed. */
  async removeOrphanFiles(): Promise<void> {
    const layers = await layersOf(this.opts.store.db, this.host);
    const known = new Set(layers.map((l) => l.path));
    const dir = join(this.dir, 'layers');
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (!known.has(path)) {
        this.opts.log.warn({ path }, 'removing a file no layer owns');
        unlinkSync(path);
      }
    }
  }

  /** Re-adds the NBD exports of live attachments (lost when QSD restarts). */
  async restoreExports(): Promise<void> {
    const db = this.opts.store.db;
    const rows = await db
      .selectFrom('attachments')
      .innerJoin('volumes', 'volumes.id', 'attachments.volume_id')
      .select(['attachments.export_id', 'attachments.attach_mode', 'volumes.active_layer_id'])
      .where('volumes.host', '=', this.host)
      .where('attachments.status', 'in', ['attaching', 'attached'])
      .where('attachments.export_id', 'is not', null)
      .execute();
    const existing = new Set((await listExports(this.qmp)).map((e) => e.id));
    for (const r of rows) {
      if (!r.export_id || !r.active_layer_id || existing.has(r.export_id)) continue;
      await addExport(this.qmp, { exportId: r.export_id, layerId: r.active_layer_id, name: r.export_id, writable: r.attach_mode !== 'ro' });
    }
  }

  async closeIfOpen(layerId: string): Promise<void> {
    await closeLayer(this.qmp, layerId);
  }

  /** Bytes the pool's layer files hold on disk (allocated blocks, not virtual sizes). */
  private usedBytes(): number {
    const dir = join(this.dir, 'layers');
    let used = 0;
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      return 0;
    }
    for (const name of names) {
      try {
        const st = statSync(join(dir, name));
        used += st.blocks * 512;
      } catch {
        // Deleted between the listing and the stat.
      }
    }
    return used;
  }

  /** Cinder-style volume stats: backend identity plus one pool, whose
   *  pool_name and free_capacity_gb the scheduler places by. Capacity is the
   *  configured size; usage is what the qcow2 files hold on disk (thin). */
  capabilities(): Record<string, unknown> {
    const total = this.opts.pool.capacityGiB;
    const usedGiB = Math.ceil((this.usedBytes() / 2 ** 30) * 100) / 100;
    const free = Math.max(0, Math.floor((total - usedGiB) * 100) / 100);
    return {
      volume_backend_name: this.opts.pool.name,
      vendor_name: 'Bulwark',
      storage_protocol: 'nbd',
      driver_version: '1.0',
      pools: [
        {
          pool_name: this.opts.pool.name,
          total_capacity_gb: total,
          free_capacity_gb: free,
          allocated_capacity_gb: usedGiB,
          reserved_percentage: 0,
          QoS_support: false,
          thin_provisioning_support: true,
          thick_provisioning_support: false,
          multiattach: true,
          max_over_subscription_ratio: 20,
        },
      ],
      nbd_socket: this.nbdSocketPath,
    };
  }

  /** Leaves QSD running on purpose when `keepDaemon`: a restarted volume role
   *  re-attaches to it and running guests keep their disks. */
  async stop(opts: { keepDaemon: boolean }): Promise<void> {
    this.stateValue = 'stopped';
    if (this.daemon && !opts.keepDaemon) await this.daemon.stop();
    else this.daemon?.qmp.close();
    this.lock?.release();
  }
}
