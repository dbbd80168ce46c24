// SnapshotCoordinator: decides direct or copy for a snapshot (and says why), runs the chosen path on the
// step engine, unwinds everything on failure, falls back to copying where that can help, and collects
// what killed runs left behind. The paths live in paths/, one per file; this class holds the connections.
import { CephCluster, releaseMemory } from '../ceph/index.js';
import type { GlanceConfig, RbdSourceConfig, TargetConfig } from '../config/types.js';
import { GlanceClient } from '../glance/client.js';
import type { Store } from '../store.js';
import { assess } from './assess.js';
import type { Services } from './context.js';
import { CoordinatorClosedError, NotConfiguredError } from './errors.js';
import { safeLogger, type CoordinatorEvent } from './events.js';
import { faultsOf } from './faults.js';
import { incrementalCheck } from './incremental/check.js';
import { checkGroup } from './group/check.js';
import { runGroupSnapshot } from './group/run.js';
import type { GroupPlan, GroupSnapshotOptions, GroupSnapshotResult } from './group/types.js';
import { prepareSourceRemoval, type SourceRemovalReport } from './source-removal.js';
import { collectGarbage } from './gc/index.js';
import { connectionFindings } from './connection-findings.js';
import { Lazy } from './lazy.js';
import { publicPlan, runSnapshot } from './snapshot.js';
import { isRbdSource } from './source-kind.js';
import { parseSource } from './source.js';
import { connectStoreUser, openTargetStore } from './targets.js';
import type { GcOptions, GcReport, Plan, SnapshotOptions, SnapshotResult } from './types.js';

export interface SnapshotCoordinatorOptions {
  /** The cluster holding instance disks, as nova's user. Needed for rbd:// sources. */
  source?: RbdSourceConfig;
  /**
   * Where images are stored (Glance's store): a config (the coordinator opens the store and closes it) or
   * your Store (any driver; you close it).
   */
  target: TargetConfig | Store;
  /** Register the image in Glance: a config (the coordinator makes and closes its client) or your client. */
  glance?: GlanceConfig | GlanceClient;
  logger?: (event: CoordinatorEvent) => void;
}

function isStore(target: TargetConfig | Store): target is Store {
  return typeof (target as Partial<Store>).add === 'function';
}

function glanceClient(glance: SnapshotCoordinatorOptions['glance']): GlanceClient | null {
  if (!glance || glance instanceof GlanceClient) return glance ?? null;
  return new GlanceClient({
    endpoint: glance.endpoint,
    ...(glance.token ? { token: glance.token } : {}),
    ...(glance.storeId ? { storeId: glance.storeId } : {}),
  });
}

export class SnapshotCoordinator {
  private readonly svc: Services;
  private readonly ownsGlance: boolean;
  private readonly ownsStore: boolean;
  private readonly sourceSession: Lazy<CephCluster>;
  private readonly storeUser: Lazy<CephCluster | null>;
  /** The store snapshots write to, as the store's user alone. */
  private readonly store: Lazy<Store>;
  /** The store gc scans: it opens clones, and so reads their parents through the disks' session. */
  private readonly gcStore: Lazy<Store>;
  private closed = false;
  private readonly running = new Set<Promise<unknown>>();

  constructor(opts: SnapshotCoordinatorOptions) {
    const source = opts.source;
    const target = opts.target;
    this.ownsGlance = !!opts.glance && !(opts.glance instanceof GlanceClient);
    this.sourceSession = new Lazy(() => {
      if (!source) return Promise.reject(new NotConfiguredError('rbd:// sources need a source cluster (source config)'));
      return CephCluster.connect({ confPath: source.confPath, user: source.user, ...(source.keyring ? { keyring: source.keyring } : {}), timeoutMs: source.connectTimeoutMs });
    });
    this.ownsStore = !isStore(target);
    this.storeUser = new Lazy(async () => (isStore(target) ? null : await connectStoreUser(target)));
    // A run never opens a clone through the store (the direct path hands it its own handle), and a source
    // user that may only read the image pool (allowed: it then copies) would fail every mark it set.
    this.store = new Lazy(async () => (isStore(target) ? target : openTargetStore(target, this.storeUser.get(), undefined)));
    this.gcStore = new Lazy(async () => (isStore(target) ? target : openTargetStore(target, this.storeUser.get(), await this.parentReader())));
    this.svc = {
      sourceConfig: source,
      glance: glanceClient(opts.glance),
      emit: safeLogger(opts.logger),
      faults: faultsOf(opts),
      sourceSession: () => this.sourceSession.get(),
      storeUserSession: () => this.storeUser.get(),
      store: () => this.store.get(),
      learned: { cloneFormat: null, glanceRefusesLocations: false },
    };
  }

  /** Decides direct or copy for `source` without changing anything (a scratch probe image comes and goes). */
  async check(source: string): Promise<Plan> {
    return this.track(async () => {
      const src = parseSource(source, this.svc.sourceConfig?.pool);
      // issue 21: a Ceph connection that fails is a finding of the plan, not a failed check.
      const broken = await connectionFindings({
        source: isRbdSource(src) && this.svc.sourceConfig ? () => this.sourceSession.get() : null,
        target: () => this.storeUser.get(),
      });
      if (broken) return broken;
      const a = await assess(this.svc, src, 'auto', { versions: true });
      // A store that does not open leaves the incremental question unanswered, not the plan.
      const incremental = await this.store.get().then((store) => incrementalCheck(store, a, () => this.svc.storeUserSession()), () => null);
      const plan: Plan = { ...publicPlan(a.plan), ...(incremental ? { incremental } : {}) };
      this.svc.emit({ type: 'plan', source: a.canonical, plan });
      return plan;
    });
  }

  /**
   * Snapshots `source` into the target store (and Glance when configured). On failure everything created
   * is removed; when the copy path can get around the failure (missing caps, clone refused, Glance refusing
   * locations) it is taken instead, and `fallbackReason` says why.
   * @throws BadSourceError, SourceNotFoundError, TargetExistsError, ModeNotPossibleError (nothing created);
   *   SnapshotFailedError, SnapshotCancelledError (everything created was removed); CleanupFailedError.
   */
  async snapshot(source: string, opts: SnapshotOptions = {}): Promise<SnapshotResult> {
    return this.track(async () => {
      try {
        return await runSnapshot(this.svc, source, opts);
      } finally {
        await releaseMemory();
      }
    });
  }

  /**
   * Snapshots several disks of one cluster at one point in time (one Ceph group snapshot), each into an
   * image of its own, all sharing `groupId` (Glance property `snapstore_group`). All or nothing: when any
   * disk fails, every image of the group is removed and the disks are left as they were. See group/run.ts.
   * @throws GROUP_CONFLICT (disks in different RBD groups), MODE_NOT_POSSIBLE (`mode: 'direct'`), and what
   *   snapshot() throws
   */
  async snapshotGroup(sources: string[], opts: GroupSnapshotOptions = {}): Promise<GroupSnapshotResult> {
    return this.track(async () => {
      try {
        return await runGroupSnapshot(this.svc, sources, opts);
      } finally {
        await releaseMemory();
      }
    });
  }

  /** Which path each disk would take within a group snapshot, and why (changes nothing). */
  async checkGroup(sources: string[]): Promise<GroupPlan> {
    return this.track(() => checkGroup(this.svc, sources));
  }

  /** Finds (and unless `dryRun`, removes) what killed runs left behind. */
  async gc(opts: GcOptions = {}): Promise<GcReport> {
    const { sourceConfig, glance, emit } = this.svc;
    return this.track(() =>
      collectGarbage(
        {
          source: sourceConfig ? { config: sourceConfig, session: () => this.sourceSession.get() } : null,
          store: () => this.gcStore.get(),
          glance,
          emit,
        },
        opts,
      ),
    );
  }

  /**
   * Call before removing an instance disk: refuses with SourceInUseError (code IN_USE, `context.clones`)
   * while instant snapshots of it are not flattened yet, or with `flattenFirst` gets them flattened first
   * (queued with ceph-mgr as the store's user where it takes them, waiting for its tasks; here otherwise). Either
   * way librbd would refuse to remove the disk ("image has snapshots") — this says why, and fixes it.
   */
  async prepareSourceRemoval(source: string, opts: { flattenFirst?: boolean; signal?: AbortSignal } = {}): Promise<SourceRemovalReport> {
    return this.track(async () => {
      const clones = (await this.store.get()).clones;
      if (!clones) throw new NotConfiguredError('instant snapshots live in a store that holds clones; this target store cannot');
      const src = parseSource(source, this.svc.sourceConfig?.pool);
      const mgrSession = await this.storeUser.get().catch(() => null);
      return prepareSourceRemoval(await this.sourceSession.get(), (await clones.where()).pool, src, { ...opts, mgrSession });
    });
  }

  /** Waits for running snapshots, then releases connections. Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.running]);
    const [src, tgt, ...stores] = await Promise.all([
      this.sourceSession.settled(),
      this.storeUser.settled(),
      this.store.settled(),
      this.gcStore.settled(),
    ]);
    // The stores first: they may use the sessions.
    if (this.ownsStore) await Promise.allSettled(stores.map((s) => s?.close()));
    await Promise.allSettled([src?.close(), tgt?.close(), this.ownsGlance ? this.svc.glance?.close() : undefined]);
  }

  /**
   * The disks' session, for the store to open clones whose parent lives in the disks' pool (Glance's user
   * often may not read it). Without a reachable source cluster the store does without.
   */
  private async parentReader(): Promise<CephCluster | undefined> {
    if (!this.svc.sourceConfig) return undefined;
    return this.sourceSession.get().catch(() => undefined);
  }

  private async track<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new CoordinatorClosedError();
    const p = fn();
    this.running.add(p);
    try {
      return await p;
    } finally {
      this.running.delete(p);
    }
  }
}
