// SnapshotCoordinator: decides direct or copy for a snapshot (and says why), runs the chosen path on the
// step engine, unwinds everything on failure, falls back to copying where that can help, and collects
// what killed runs left behind.
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Image, Ioctx } from 'ceph-rbd-napi';
import type { GlanceConfig, RbdSourceConfig, TargetConfig } from '../config/types.js';
import { GlanceClient } from '../glance/client.js';
import { SnapstoreError } from '../errors.js';
import { GlanceError } from '../glance/errors.js';
import { checkImageId, formatFileLocation, formatRbdLocation } from '../location.js';
import type { Store, StoreSource } from '../store.js';
import { directFallback, isLocationsNotAllowed, isNotFound, isPermission, type Fallback } from './classify.js';
import {
  BadSourceError,
  CleanupFailedError,
  CoordinatorClosedError,
  ModeNotPossibleError,
  NotConfiguredError,
  SnapshotCancelledError,
  SnapshotFailedError,
  SourceNotFoundError,
  TargetExistsError,
} from './errors.js';
import { errorText, safeLogger, type CoordinatorEvent, type Logger } from './events.js';
import { allocatedBytes, extentStream } from './extents.js';
import type { FaultInjector } from './faults.js';
import { collectGarbage } from './gc.js';
import {
  GLANCE_RUN_PROPERTY,
  PENDING_KEY,
  TARGET_SNAP,
  lockCookie,
  encodeMark,
  newRunId,
  pendingFileName,
  pendingMarker,
  probeImageName,
  runKey,
  sourceSnapName,
  type PendingMarker,
  type RunRecord,
} from './names.js';
import { blockersText, decidePlan, type CapsProbe, type DetailedPlan } from './plan.js';
import { ignoreNotFound, isExists, removeImageFully, removeSnapshot, whileBusy } from './rbd-util.js';
import { CephCluster, releaseMemory } from '../ceph/index.js';
import { prepareSourceRemoval, type SourceRemovalReport } from './flattener.js';
import { FLATTEN_KEY, INSTANT_CLONE_FEATURES, encodeFlattenRequest, storeReadsSource, type FlattenRequest } from './instant.js';
import { Lazy } from './lazy.js';
import { formatSource, parseSource, type Source } from './source.js';
import { StepFailure, StepRunner } from './steps.js';
import { openTargetStore } from './targets.js';
import type { GcOptions, GcReport, Plan, SnapshotOptions, SnapshotResult } from './types.js';

export interface SnapshotCoordinatorOptions {
  /** The cluster holding instance disks, as nova's user. Needed for rbd:// sources. */
  source?: RbdSourceConfig;
  /** Where images are stored (Glance's store). */
  target: TargetConfig;
  /** Register the image in Glance: a config (the coordinator makes and closes its client) or your client. */
  glance?: GlanceConfig | GlanceClient;
  logger?: (event: CoordinatorEvent) => void;
  /** Tests only: fail chosen steps (see faults.ts). */
  faults?: FaultInjector;
}

type RbdSource = Extract<Source, { kind: 'rbd' }>;

/** What `check` learned, kept for the run that follows it. */
interface Assessment {
  src: Source;
  /** The source as `rbd://fsid/pool/image[/snap]` or `file:///path`. */
  canonical: string;
  plan: DetailedPlan;
  /** For rbd sources. */
  session: CephCluster | null;
  targetFsid: string | null;
}

type Sink = 'store' | 'glance';

const CLONE_FORMAT_PROBE_SNAP = 'probe';

export class SnapshotCoordinator {
  private readonly sourceConfig: RbdSourceConfig | undefined;
  private readonly target: TargetConfig;
  private readonly glance: GlanceClient | null;
  private readonly ownsGlance: boolean;
  private readonly emit: Logger;
  private readonly faults: FaultInjector | undefined;
  private readonly sourceSession: Lazy<CephCluster>;
  private readonly targetSession: Lazy<CephCluster>;
  private readonly store: Lazy<Store>;
  /** Learned once per coordinator: a cluster's clone format does not change under a running service. */
  private cloneFormat: 1 | 2 | null = null;
  /** Set when Glance refused a location: later snapshots upload through Glance straight away. */
  private glanceRefusesLocations = false;
  private closed = false;
  private readonly running = new Set<Promise<unknown>>();

  constructor(opts: SnapshotCoordinatorOptions) {
    this.sourceConfig = opts.source;
    this.target = opts.target;
    if (opts.glance instanceof GlanceClient) {
      this.glance = opts.glance;
      this.ownsGlance = false;
    } else if (opts.glance) {
      this.glance = new GlanceClient({
        endpoint: opts.glance.endpoint,
        ...(opts.glance.token ? { token: opts.glance.token } : {}),
        ...(opts.glance.storeId ? { storeId: opts.glance.storeId } : {}),
      });
      this.ownsGlance = true;
    } else {
      this.glance = null;
      this.ownsGlance = false;
    }
    this.emit = safeLogger(opts.logger);
    this.faults = opts.faults;
    this.sourceSession = new Lazy(() => {
      const s = this.sourceConfig;
      if (!s) return Promise.reject(new NotConfiguredError('rbd:// sources need a source cluster (source config)'));
      return CephCluster.connect({ confPath: s.confPath, user: s.user, ...(s.keyring ? { keyring: s.keyring } : {}), timeoutMs: s.connectTimeoutMs });
    });
    this.targetSession = new Lazy(() => {
      const t = this.target;
      if (t.kind !== 'rbd') return Promise.reject(new NotConfiguredError('the target is not an RBD store'));
      return CephCluster.connect({ confPath: t.confPath, user: t.user, ...(t.keyring ? { keyring: t.keyring } : {}), timeoutMs: t.connectTimeoutMs });
    });
    this.store = new Lazy(() => openTargetStore(this.target, () => this.targetSession.get()));
  }

  /** Decides direct or copy for `source` without changing anything (a scratch probe image comes and goes). */
  async check(source: string): Promise<Plan> {
    return this.track(async () => {
      const a = await this.assess(parseSource(source, this.sourceConfig?.pool), 'auto');
      this.emit({ type: 'plan', source: a.canonical, plan: publicPlan(a.plan) });
      return publicPlan(a.plan);
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
        return await this.runSnapshot(source, opts);
      } finally {
        await releaseMemory();
      }
    });
  }

  /** Finds (and unless `dryRun`, removes) what killed runs left behind. */
  async gc(opts: GcOptions = {}): Promise<GcReport> {
    return this.track(() =>
      collectGarbage(
        {
          source: this.sourceConfig ? { config: this.sourceConfig, session: () => this.sourceSession.get() } : null,
          target: this.target,
          targetSession: this.target.kind === 'rbd' ? () => this.targetSession.get() : null,
          glance: this.glance,
          emit: this.emit,
        },
        opts,
      ),
    );
  }

  /**
   * Call before removing an instance disk: refuses with SourceInUseError (code IN_USE, `context.clones`)
   * while instant snapshots of it are not flattened yet, or with `flattenFirst` flattens them first. Either
   * way librbd would refuse to remove the disk ("image has snapshots") — this says why, and fixes it.
   */
  async prepareSourceRemoval(source: string, opts: { flattenFirst?: boolean; signal?: AbortSignal } = {}): Promise<SourceRemovalReport> {
    return this.track(async () => {
      if (this.target.kind !== 'rbd') throw new NotConfiguredError('instant snapshots live in an RBD target; this target is a file store');
      const src = parseSource(source, this.sourceConfig?.pool);
      return prepareSourceRemoval(await this.sourceSession.get(), this.target.pool, src, opts);
    });
  }

  /** Waits for running snapshots, then releases connections. Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.running]);
    const [src, tgt, store] = await Promise.all([
      this.sourceSession.settled(),
      this.targetSession.settled(),
      this.store.settled(),
    ]);
    await Promise.allSettled([src?.close(), tgt?.close(), store?.close(), this.ownsGlance ? this.glance?.close() : undefined]);
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

  // ---- plan ---------------------------------------------------------------------------------------------

  private async assess(src: Source, mode: 'auto' | 'direct' | 'copy'): Promise<Assessment> {
    const glanceState = !this.glance ? 'none' : this.glanceRefusesLocations ? 'refused' : 'assumed';
    const target =
      this.target.kind === 'rbd'
        ? { kind: 'rbd' as const, fsid: await this.targetFsid(), pool: this.target.pool }
        : { kind: 'file' as const, dataDir: this.target.dataDir };
    const targetFsid = target.kind === 'rbd' ? target.fsid : null;

    if (src.kind === 'file') {
      const fileFormat = await sniffFile(src.path);
      const plan = decidePlan({
        source: src,
        sourceCluster: null,
        target,
        capsProbe: null,
        cloneFormat: null,
        features: null,
        snapProtected: null,
        fileFormat,
        glance: glanceState,
      });
      return { src, canonical: formatSource(src), plan, session: null, targetFsid };
    }

    const session = await this.sourceSession.get();
    const canonical = formatSource(src, session.fsid);
    if (src.fsid !== null && src.fsid !== session.fsid) {
      throw new SourceNotFoundError(
        `source ${canonical} is in cluster ${src.fsid}, but the configured source cluster is ${session.fsid}`,
        { source: canonical },
      );
    }
    const { features, snapProtected } = await this.inspectSource(session, src, canonical);
    let capsProbe: CapsProbe | null = null;
    let cloneFormat: 1 | 2 | null = null;
    const sameCluster = target.kind === 'rbd' && target.fsid === session.fsid;
    if (sameCluster && mode !== 'copy' && features.layering) {
      ({ caps: capsProbe, cloneFormat } = await this.probe(session, target.pool));
    }
    const plan = decidePlan({
      source: src,
      sourceCluster: { fsid: session.fsid, user: session.user },
      target,
      capsProbe,
      cloneFormat,
      features,
      snapProtected,
      fileFormat: null,
      glance: glanceState,
    });
    if (plan.instant.possible && this.target.kind === 'rbd') {
      plan.instant = await storeReadsSource(await this.targetSession.get(), src, this.target.pool, !!this.glance);
    }
    return { src, canonical, plan, session, targetFsid };
  }

  private async targetFsid(): Promise<string> {
    return (await this.targetSession.get()).fsid;
  }

  private async inspectSource(
    session: CephCluster,
    src: RbdSource,
    canonical: string,
  ): Promise<{ features: { layering: boolean; deepFlatten: boolean }; snapProtected: boolean | null }> {
    const notFound = (what: string, cause: unknown) =>
      new SourceNotFoundError(`source ${canonical}: ${what} does not exist`, { source: canonical }, cause);
    let io: Ioctx;
    try {
      io = await session.pool(src.pool);
    } catch (err) {
      if (isNotFound(err)) throw notFound(`pool ${src.pool}`, err);
      throw err;
    }
    let image: Image;
    try {
      image = await io.openImage(src.image, { readOnly: true });
    } catch (err) {
      if (isNotFound(err)) throw notFound(`image ${src.pool}/${src.image}`, err);
      throw err;
    }
    try {
      const st = await image.stat();
      let snapProtected: boolean | null = null;
      if (src.snap !== null) {
        if (!(await image.snapExists(src.snap))) throw notFound(`snapshot ${src.pool}/${src.image}@${src.snap}`, null);
        snapProtected = await image.snapIsProtected(src.snap);
      }
      return {
        features: { layering: st.featureNames.includes('layering'), deepFlatten: st.featureNames.includes('deep-flatten') },
        snapProtected,
      };
    } finally {
      await image.close();
    }
  }

  /**
   * Probes, as the source user, whether it may create images in the target pool (a scratch image made and
   * removed) and — once per coordinator — which clone format librbd picks on this cluster (an unprotected
   * snapshot of the scratch image cloned with librbd's default: format 1 refuses it).
   */
  private async probe(session: CephCluster, pool: string): Promise<{ caps: CapsProbe; cloneFormat: 1 | 2 | null }> {
    let io: Ioctx;
    const name = probeImageName();
    try {
      io = await session.pool(pool);
      await io.createImage(name, 1 << 20);
    } catch (err) {
      return { caps: { ok: false, permission: isPermission(err), error: errorText(err) }, cloneFormat: null };
    }
    const child = probeImageName();
    try {
      if (this.cloneFormat === null) {
        const image = await io.openImage(name);
        try {
          await image.snapCreate(CLONE_FORMAT_PROBE_SNAP);
          try {
            await io.clone(name, CLONE_FORMAT_PROBE_SNAP, io, child);
            this.cloneFormat = 2;
            await io.removeImage(child);
          } catch (err) {
            if ((err as { code?: unknown }).code !== 'INVALID_ARGUMENT') throw err;
            this.cloneFormat = 1;
          }
          await image.snapRemove(CLONE_FORMAT_PROBE_SNAP);
        } finally {
          await image.close();
        }
      }
      return { caps: { ok: true }, cloneFormat: this.cloneFormat };
    } catch (err) {
      return { caps: { ok: false, permission: isPermission(err), error: errorText(err) }, cloneFormat: null };
    } finally {
      // gc removes a probe that could not be removed here (its name carries its birth time).
      await removeImageFully(io, child).catch(() => {});
      await whileBusy(() => removeImageFully(io, name)).catch((err: unknown) =>
        this.emit({ type: 'undo', runId: 'probe', what: `remove probe image ${pool}/${name}`, state: 'failed', error: errorText(err) }),
      );
    }
  }

  // ---- snapshot -----------------------------------------------------------------------------------------

  private async runSnapshot(source: string, opts: SnapshotOptions): Promise<SnapshotResult> {
    const started = performance.now();
    const mode = opts.mode ?? 'auto';
    if (mode !== 'auto' && mode !== 'direct' && mode !== 'copy') {
      throw new SnapstoreError('INVALID_ARGUMENT', `mode must be auto, direct or copy, not ${JSON.stringify(mode)}`);
    }
    const flatten = opts.flatten ?? 'sync';
    if (flatten !== 'sync' && flatten !== 'background') {
      throw new SnapstoreError('INVALID_ARGUMENT', `flatten must be sync or background, not ${JSON.stringify(flatten)}`);
    }
    const background = flatten === 'background';
    const checksums = opts.checksums ?? 'auto';
    if (checksums !== 'auto' && checksums !== 'inline' && checksums !== 'off') {
      throw new SnapstoreError('INVALID_ARGUMENT', `checksums must be auto, inline or off, not ${JSON.stringify(checksums)}`);
    }
    if (opts.imageId !== undefined) checkImageId(opts.imageId);
    const src = parseSource(source, this.sourceConfig?.pool);
    if (opts.signal?.aborted) throw new SnapshotCancelledError({ source }, opts.signal.reason);
    const a = await this.assess(src, mode);
    this.emit({ type: 'plan', source: a.canonical, plan: publicPlan(a.plan) });
    if (a.plan.reasons.some((r) => r.code === 'RAW_FORMAT' && !r.ok)) {
      throw new BadSourceError(`${a.canonical}: ${a.plan.reasons.find((r) => r.code === 'RAW_FORMAT')!.message}`, {
        source: a.canonical,
      });
    }

    let method: 'direct' | 'copy';
    let fallbackReason: string | null = null;
    if (mode === 'copy') {
      method = 'copy';
    } else if (a.plan.method === 'direct') {
      method = 'direct';
    } else if (mode === 'direct') {
      throw new ModeNotPossibleError(`the direct path is not possible for ${a.canonical}: ${blockersText(a.plan)}`, {
        source: a.canonical,
      });
    } else {
      method = 'copy';
      fallbackReason = blockersText(a.plan);
    }
    if (background && (method !== 'direct' || !a.plan.instant.possible)) {
      throw new ModeNotPossibleError(`an instant snapshot (flatten: background) of ${a.canonical} is not possible: ${a.plan.instant.reason}`, {
        source: a.canonical,
        ...(a.plan.instant.fix ? { fix: a.plan.instant.fix } : {}),
      });
    }
    let sink: Sink = this.glance && this.glanceRefusesLocations ? 'glance' : 'store';
    let imageId = opts.imageId ?? randomUUID();

    for (;;) {
      await this.checkTargetFree(a, method, sink, imageId);
      const runId = newRunId();
      this.emit({ type: 'run', runId, path: method, source: a.canonical, imageId });
      const runner = new StepRunner({
        runId,
        path: method,
        emit: this.emit,
        faults: this.faults,
        signal: opts.signal,
        onProgress: opts.onProgress,
      });
      try {
        const partial =
          method === 'direct'
            ? await this.direct(runner, a, imageId, opts, background)
            : await this.copy(runner, a, imageId, sink, opts);
        await runner.finish();
        const result: SnapshotResult = {
          ...partial,
          method,
          fallbackReason,
          seconds: (performance.now() - started) / 1000,
          flatten: method === 'direct' && background ? 'pending' : 'done',
        };
        this.emit({ type: 'result', runId, result });
        return result;
      } catch (err) {
        const failures = await runner.rollback();
        const step = err instanceof StepFailure ? err.step : null;
        const cause = err instanceof StepFailure ? err.cause : err;
        if (failures.length > 0) {
          throw new CleanupFailedError(
            `snapshot of ${a.canonical} failed${step ? ` at ${step}` : ''} (${errorText(cause)}), and removing what it had created failed too: ${failures
              .map((f) => `${f.what} (${errorText(f.error)})`)
              .join('; ')}; run gc to retry`,
            { source: a.canonical, runId, step, leftovers: failures.map((f) => f.what) },
            cause,
          );
        }
        if (err instanceof SnapshotCancelledError) throw err;
        if (!(err instanceof StepFailure)) throw err;
        const fallback: Fallback | null =
          method === 'direct'
            ? directFallback(err.step, cause)
            : this.glance && sink === 'store' && err.step === 'glance-add-location' && isLocationsNotAllowed(cause)
              ? { code: 'LOCATIONS_NOT_ALLOWED', reason: 'Glance does not accept locations (show_multiple_locations is off)' }
              : null;
        if (fallback && mode !== 'direct') {
          if (fallback.code === 'LOCATIONS_NOT_ALLOWED') {
            this.glanceRefusesLocations = true;
            sink = 'glance';
          }
          fallbackReason = `${fallback.reason}: ${errorText(cause)}`;
          this.emit({ type: 'fallback', runId, code: fallback.code, reason: fallbackReason });
          method = 'copy';
          // Glance keeps the ids of deleted images: a new attempt needs a new one unless the caller chose it.
          if (opts.imageId === undefined) imageId = randomUUID();
          continue;
        }
        if (isNotFound(cause) && (err.step === 'record' || err.step === 'snap-create' || err.step === 'copy')) {
          throw new SourceNotFoundError(`source ${a.canonical} disappeared during the snapshot`, { source: a.canonical, step: err.step }, cause);
        }
        throw new SnapshotFailedError(
          `snapshot of ${a.canonical} failed at ${err.step} (${method} path): ${errorText(cause)}; everything it had created was removed`,
          { source: a.canonical, step: err.step, method, runId },
          cause,
        );
      }
    }
  }

  /** Refuses to start when the image id is taken (gc would otherwise count someone else's image as ours). */
  private async checkTargetFree(a: Assessment, method: 'direct' | 'copy', sink: Sink, imageId: string): Promise<void> {
    if (method === 'copy' && sink === 'glance') return;
    let exists = false;
    if (this.target.kind === 'rbd') {
      const io =
        method === 'direct' ? await a.session!.pool(this.target.pool) : await (await this.targetSession.get()).pool(this.target.pool);
      try {
        await io.statImage(imageId);
        exists = true;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    } else {
      exists = await stat(join(this.target.dataDir, imageId)).then(
        () => true,
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return false;
          throw err;
        },
      );
    }
    if (exists) {
      throw new TargetExistsError(`image ${imageId} already exists in the target store`, { imageId });
    }
  }

  private glanceImage(imageId: string, opts: SnapshotOptions): { id: string; created: boolean } | null {
    return this.glance ? { id: imageId, created: opts.imageId === undefined } : null;
  }

  private record(a: Assessment, runId: string, method: 'direct' | 'copy', sourceSnap: string | null, target: string, glance: RunRecord['glance']): RunRecord {
    return { ...pendingMarker(runId, a.canonical, sourceSnap), method, target, glance };
  }

  /**
   * Opens the source image and writes the run record on it (see names.ts); its removal is the run's last
   * step. A source opened read-only (an existing snapshot the user may only read) gets no record.
   */
  private async openAndRecord(r: StepRunner, source: SourceHandle, record: RunRecord): Promise<void> {
    const key = runKey(record.runId);
    await r.step('record', async () => {
      const image = await source.open();
      if (source.readOnly) return;
      // When removing something failed, the record stays (marked abandoned) so that gc can finish the job.
      r.undo(`remove run record ${key}`, async ({ failed }) => {
        const handle = await source.get();
        if (failed) await handle.metadataSet(key, encodeMark({ ...record, abandoned: true }));
        else await ignoreNotFound(handle.metadataRemove(key));
      });
      await image.metadataSet(key, encodeMark(record));
    });
  }

  /**
   * Removes the run record: the snapshot is complete. Failing here does not fail it (Glance may already
   * point at the image); the record left behind names a target that no longer proves to be the run's, so gc
   * removes only the record.
   */
  private async unrecord(r: StepRunner, source: SourceHandle): Promise<void> {
    if (source.readOnly) return;
    await r.step('unrecord', async () => (await source.get()).metadataRemove(runKey(r.runId))).catch(() => {});
  }

  private async createGlanceImage(r: StepRunner, glance: GlanceClient, imageId: string, name: string): Promise<void> {
    // The id is ours (a fresh uuid), so deleting it on failure can only delete what this run made. It is
    // to be deleted unless Glance certainly never saw the request (connection refused, or an HTTP error).
    const undo = () =>
      r.undo(`delete Glance image ${imageId}`, async () => {
        await glance.deleteImage(imageId, { ignoreMissing: true });
      });
    await r.step('glance-create', async () => {
      try {
        await glance.createImage({
          id: imageId,
          name,
          diskFormat: 'raw',
          containerFormat: 'bare',
          properties: { [GLANCE_RUN_PROPERTY]: r.runId },
        });
      } catch (err) {
        if (!glanceRefusedRequest(err)) undo();
        throw err;
      }
      undo();
    });
  }

  private async direct(
    r: StepRunner,
    a: Assessment,
    imageId: string,
    opts: SnapshotOptions,
    background: boolean,
  ): Promise<Omit<SnapshotResult, 'method' | 'fallbackReason' | 'seconds' | 'flatten'>> {
    const src = a.src as RbdSource;
    const session = a.session!;
    const pool = (this.target as Extract<TargetConfig, { kind: 'rbd' }>).pool;
    const cloneFormat = a.plan.cloneFormat!;
    const fsid = session.fsid;
    const ownSnap = src.snap === null;
    const snapName = src.snap ?? sourceSnapName(r.runId);
    const srcIo = await session.pool(src.pool);
    const dstIo = await session.pool(pool);
    const glanceImage = this.glanceImage(imageId, opts);

    const source = new SourceHandle(srcIo, src.image, ownSnap);
    r.always('close source image', () => source.close());
    await this.openAndRecord(r, source, this.record(a, r.runId, 'direct', ownSnap ? snapName : null, `rbd://${fsid}/${pool}/${imageId}`, glanceImage));
    if (this.glance && glanceImage?.created) {
      await this.createGlanceImage(r, this.glance, imageId, opts.name ?? `${src.image} snapshot`);
    }

    let snapUndo = null;
    if (ownSnap) {
      snapUndo = r.undo(`remove snapshot ${src.pool}/${src.image}@${snapName}`, async () => removeSnapshot(await source.get(), snapName));
      await r.step('snap-create', async () => (await source.get()).snapCreate(snapName));
    }
    const protectedHere = ownSnap && cloneFormat === 1;
    if (protectedHere) await r.step('snap-protect', async () => (await source.get()).snapProtect(snapName));
    await source.close();

    const cloneUndo = r.undo(`remove clone ${pool}/${imageId}`, () => whileBusy(() => removeImageFully(dstIo, imageId)));
    try {
      await r.step('clone', () =>
        srcIo.clone(src.image, snapName, dstIo, imageId, { format: cloneFormat, ...(background ? { features: INSTANT_CLONE_FEATURES } : {}) }),
      );
    } catch (err) {
      // Someone else's image of that name: not ours to remove.
      if (isExists(err)) cloneUndo.release();
      throw err;
    }
    let clone: Image | null = null;
    r.always('close clone', async () => {
      await clone?.close();
    });
    const marker = pendingMarker(r.runId, a.canonical, snapName);
    // The run's advisory lock (see lockCookie) is the same cls lock the exclusive-lock feature manages: on a
    // clone with that feature (Ceph's default features) it would keep flatten from ever getting the lock it
    // needs, so there the feature's own lock, held by this handle while it writes, stands in for it.
    let advisoryLock = false;
    await r.step('mark-clone', async () => {
      clone = await dstIo.openImage(imageId);
      advisoryLock = !(await clone.stat()).featureNames.includes('exclusive-lock');
      if (advisoryLock) await clone.lockAcquireExclusive(lockCookie(r.runId));
      await clone.metadataSet(PENDING_KEY, encodeMark(marker));
    });
    const cloneImage = clone! as Image;

    // Background: no flatten here; the source snapshot, removed below, waits in the snapshot trash.
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (!background) await r.step('flatten', () =>
        cloneImage.flatten({
          signal: stop.signal,
          onProgress: (done, total) => {
            if (!r.progress('flatten', 'flatten', done, total)) stop.abort();
          },
        }),
      );
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }

    if (ownSnap) {
      if (protectedHere) await r.step('snap-unprotect', async () => (await source.get()).snapUnprotect(snapName));
      await r.step('snap-remove', async () => (await source.get()).snapRemove(snapName));
      snapUndo?.release();
    }
    await r.step('target-snap-create', () => cloneImage.snapCreate(TARGET_SNAP));
    await r.step('target-snap-protect', () => cloneImage.snapProtect(TARGET_SNAP));
    await r.step('unmark-clone', async () => {
      // The flatten queue entry goes on before the run's marker comes off: the clone is never unaccounted for.
      if (background) {
        const request: FlattenRequest = { v: 1, requestedAt: new Date().toISOString(), runId: r.runId, source: a.canonical, sourceSnap: ownSnap ? snapName : null };
        await cloneImage.metadataSet(FLATTEN_KEY, encodeFlattenRequest(request));
      }
      await cloneImage.metadataRemove(PENDING_KEY);
      if (advisoryLock) await cloneImage.unlock(lockCookie(r.runId));
    });
    const sizeBytes = await cloneImage.size();
    const location = formatRbdLocation(fsid, pool, imageId, TARGET_SNAP);

    let glance: SnapshotResult['glance'] = null;
    if (this.glance && glanceImage) {
      const client = this.glance;
      const added = await r.step('glance-add-location', () =>
        client.addLocation(glanceImage.id, location, { expectedFsid: fsid, ...(opts.signal ? { signal: opts.signal } : {}) }),
      );
      glance = { id: added.image.id, status: added.image.status };
    }
    await this.unrecord(r, source);
    return { imageId, location, sizeBytes, glance, checksums: null };
  }

  private async copy(
    r: StepRunner,
    a: Assessment,
    imageId: string,
    sink: Sink,
    opts: SnapshotOptions,
  ): Promise<Omit<SnapshotResult, 'method' | 'fallbackReason' | 'seconds' | 'flatten'>> {
    const src = a.src;
    const glanceImage = this.glanceImage(imageId, opts);
    if (sink === 'glance' && (!this.glance || !glanceImage)) throw new NotConfiguredError('uploading through Glance needs Glance');
    const targetText =
      sink === 'glance'
        ? `glance:${imageId}`
        : this.target.kind === 'rbd'
          ? `rbd://${a.targetFsid}/${this.target.pool}/${imageId}`
          : formatFileLocation(join(resolve(this.target.dataDir), imageId));

    let srcIo: Ioctx | null = null;
    let source: SourceHandle | null = null;
    let snapName: string | null = null;
    const ownSnap = src.kind === 'rbd' && src.snap === null;
    if (src.kind === 'rbd') {
      srcIo = await a.session!.pool(src.pool);
      snapName = src.snap ?? sourceSnapName(r.runId);
      const handle = new SourceHandle(srcIo, src.image, ownSnap);
      source = handle;
      r.always('close source image', () => handle.close());
      await this.openAndRecord(r, handle, this.record(a, r.runId, 'copy', ownSnap ? snapName : null, targetText, glanceImage));
    }
    if (this.glance && glanceImage?.created) {
      await this.createGlanceImage(r, this.glance, imageId, opts.name ?? `${src.kind === 'rbd' ? src.image : 'file'} snapshot`);
    }
    let snapUndo = null;
    if (ownSnap && source && snapName) {
      const handle = source;
      const name = snapName;
      snapUndo = r.undo(`remove snapshot ${(src as RbdSource).pool}/${(src as RbdSource).image}@${name}`, async () => removeSnapshot(await handle.get(), name));
      await r.step('snap-create', async () => (await handle.get()).snapCreate(name));
    }
    await source?.close();

    let reader: Image | null = null;
    r.always('close snapshot reader', async () => {
      await reader?.close();
    });
    const stopCopy = new AbortController();
    const onAbort = () => stopCopy.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let location = '';
    let sizeBytes = 0;
    let hashes: SnapshotResult['checksums'] = null;
    const checksums = sink === 'store' && (await this.wantChecksums(opts.checksums ?? 'auto', glanceImage !== null));
    try {
      await r.step('copy', async () => {
        let data: StoreSource;
        const progress = (done: number, total: number) => {
          const go = r.progress('copy', 'copy', done, total);
          if (!go) stopCopy.abort();
          return go;
        };
        if (src.kind === 'rbd') {
          reader = await srcIo!.openImage(src.image, { readOnly: true, snapshot: snapName! });
          sizeBytes = await reader.size();
          const extents = await reader.diffIterate();
          this.emit({ type: 'progress', runId: r.runId, phase: 'allocated', done: allocatedBytes(extents), total: sizeBytes });
          // A store copies each piece before asking for the next; Glance's HTTP body may still hold it.
          data = extentStream(reader, extents, sizeBytes, { progress, stop: () => r.stopReason(), reuseBuffers: sink === 'store' });
        } else {
          sizeBytes = (await stat(src.path)).size;
          data = fileStream(src.path, sizeBytes, progress, () => r.stopReason());
        }
        if (sink === 'glance') {
          await this.glance!.upload(imageId, data, { size: sizeBytes, signal: stopCopy.signal });
          location = `glance:${imageId}`;
        } else {
          const store = await this.store.get();
          const added = await store.add(imageId, data, sizeBytes, { signal: stopCopy.signal, checksums });
          r.undo(`delete ${added.location}`, () => ignoreNotFound(store.delete(added.location)));
          location = added.location;
          if (added.checksum !== null && added.multihash !== null) {
            hashes = { checksum: added.checksum, multihash: added.multihash, hashAlgo: 'sha512' };
          }
        }
      });
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    await (reader as Image | null)?.close();

    const marker = pendingMarker(r.runId, a.canonical, ownSnap ? snapName : null);
    if (sink === 'store') await r.step('mark-target', () => this.markTarget(r, imageId, marker));

    if (ownSnap && source && snapName) {
      const handle = source;
      const name = snapName;
      await r.step('snap-remove', async () => (await handle.get()).snapRemove(name));
      snapUndo?.release();
    }
    if (sink === 'store') await r.step('unmark-target', () => this.unmarkTarget(imageId));
    let glance: SnapshotResult['glance'] = null;
    if (this.glance && glanceImage) {
      const client = this.glance;
      if (sink === 'glance') {
        const image = await client.getImage(glanceImage.id);
        glance = { id: image.id, status: image.status };
        const direct = typeof image.direct_url === 'string' ? image.direct_url : image.locations?.[0]?.url;
        if (direct) location = direct;
      } else {
        const h = hashes as SnapshotResult['checksums'];
        const added = await r.step('glance-add-location', () =>
          client.addLocation(glanceImage.id, location, {
            ...(h ? { checksum: h.checksum, osHashAlgo: 'sha512', osHashValue: h.multihash } : {}),
            ...(this.target.kind === 'rbd' && a.targetFsid ? { expectedFsid: a.targetFsid } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
          }),
        );
        glance = { id: added.image.id, status: added.image.status };
      }
    }
    if (source) await this.unrecord(r, source);
    return { imageId: glance?.id ?? imageId, location, sizeBytes, glance, checksums: hashes };
  }

  /**
   * `auto`: hash only when the image is registered with a Glance that will not hash it itself (image API
   * before 2.17, PATCH locations). When Glance's versions cannot be read, hash: better slow than missing.
   */
  private async wantChecksums(mode: 'auto' | 'inline' | 'off', registering: boolean): Promise<boolean> {
    if (mode === 'inline') return true;
    if (mode === 'off' || !this.glance || !registering) return false;
    return !(await this.glance.supportsLocationsApi().catch(() => false));
  }

  /** Marks the image the store wrote as this run's until the run completes (see names.ts). */
  private async markTarget(r: StepRunner, imageId: string, marker: PendingMarker): Promise<void> {
    if (this.target.kind === 'file') {
      const path = join(resolve(this.target.dataDir), pendingFileName(imageId));
      r.undo(`remove ${path}`, () => rm(path, { force: true }));
      await writeFile(path, encodeMark(marker), { flag: 'wx' });
      return;
    }
    const image = await (await (await this.targetSession.get()).pool(this.target.pool)).openImage(imageId);
    try {
      await image.metadataSet(PENDING_KEY, encodeMark(marker));
    } finally {
      await image.close();
    }
  }

  private async unmarkTarget(imageId: string): Promise<void> {
    if (this.target.kind === 'file') {
      await rm(join(resolve(this.target.dataDir), pendingFileName(imageId)));
      return;
    }
    const image = await (await (await this.targetSession.get()).pool(this.target.pool)).openImage(imageId);
    try {
      await image.metadataRemove(PENDING_KEY);
    } finally {
      await image.close();
    }
  }
}

/**
 * The source image, opened read-write (to take a snapshot and keep the run record) only while it is needed:
 * a killed process's watch on the disk's header would linger for osd_client_watch_timeout and hold up
 * gc's work there, so the handle is closed while the long steps (flatten, copy) run and reopened after.
 * A source that is an existing snapshot may be readable only: then it is opened read-only.
 */
class SourceHandle {
  private image: Promise<Image> | null = null;
  readOnly = false;

  constructor(
    private readonly io: Ioctx,
    private readonly name: string,
    private readonly mustWrite: boolean,
  ) {}

  async open(): Promise<Image> {
    try {
      this.image = this.io.openImage(this.name);
      return await this.image;
    } catch (err) {
      this.image = null;
      if (this.mustWrite || !isPermission(err)) throw err;
      this.readOnly = true;
      return this.get();
    }
  }

  get(): Promise<Image> {
    if (!this.image) {
      const p = this.io.openImage(this.name, this.readOnly ? { readOnly: true } : {});
      this.image = p;
      p.catch(() => {
        if (this.image === p) this.image = null;
      });
    }
    return this.image;
  }

  async close(): Promise<void> {
    const p = this.image;
    this.image = null;
    if (p) await (await p.catch(() => null))?.close();
  }
}

/** Glance answered with an HTTP error, or the connection was refused before anything was sent. */
function glanceRefusedRequest(err: unknown): boolean {
  if (!(err instanceof GlanceError)) return false;
  return (err.status !== undefined && err.status < 500) || err.context.failure === 'refused';
}

function publicPlan(plan: DetailedPlan): Plan {
  return { method: plan.method, reasons: plan.reasons, instant: plan.instant };
}

/** What a file's first bytes say it is: `raw` unless it carries a known image format's magic. */
async function sniffFile(path: string): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new SourceNotFoundError(`source file ${path} does not exist`, { path }, err);
    throw new BadSourceError(`source file ${path} cannot be read (${code ?? errorText(err)})`, { path });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new BadSourceError(`source ${path} is not a regular file`, { path });
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, 512, 0);
    const b = head.subarray(0, bytesRead);
    if (b.subarray(0, 4).equals(Buffer.from([0x51, 0x46, 0x49, 0xfb]))) return 'qcow2';
    if (b.subarray(0, 4).toString('latin1') === 'KDMV') return 'vmdk';
    if (b.subarray(0, 8).toString('latin1') === 'vhdxfile') return 'vhdx';
    if (b.subarray(0, 8).toString('latin1') === 'conectix') return 'vhd';
    if (b.length >= 68 && b.readUInt32LE(64) === 0xbeda107f) return 'vdi';
    return 'raw';
  } finally {
    await handle.close();
  }
}

async function* fileStream(
  path: string,
  size: number,
  progress: (done: number, total: number) => boolean,
  stop: () => unknown,
): AsyncGenerator<Buffer, void, undefined> {
  let done = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) {
    const buf = chunk as Buffer;
    yield buf;
    done += buf.length;
    if (!progress(done, size)) throw stop();
  }
}
