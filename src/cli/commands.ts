// What each `snapstore` command does, on the config the operator's files describe. Every command closes
// what it opened, so the process ends on its own.
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, renameSync, rmSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { loadConfig } from '../config/load.js';
import type { SnapstoreConfig, TargetConfig } from '../config/types.js';
import type { CoordinatorEvent, FlattenerEvent, Plan, SnapshotCoordinator } from '../coordinator/index.js';
import { SnapstoreError } from '../errors.js';
import { storeFromConfig } from '../drivers/index.js';
import type { Store } from '../store.js';
import type { Invocation } from './args.js';
import { describeGlance, openGlance, type GlanceAccess } from './glance.js';
import { checkGroup, snapshotGroup } from './group.js';
import { UsageError, type Output } from './output.js';

/** The command's one positional argument (args.ts has checked that there is exactly one). */
function theArgument(inv: Invocation): string {
  const arg = inv.positionals[0];
  if (arg === undefined) throw new UsageError(`${inv.command} needs an argument (see snapstore --help)`);
  return arg;
}

function configured(inv: Invocation): SnapstoreConfig {
  if (inv.configs.length === 0) throw new UsageError(`${inv.command} needs --config FILE (nova.conf, glance-api.conf)`);
  return loadConfig(inv.configs);
}

function requireTarget(cfg: SnapstoreConfig): TargetConfig {
  if (!cfg.target) {
    throw new UsageError(`no image store configured: give a glance-api.conf with [glance_store] (read: ${cfg.files.join(', ')})`);
  }
  return cfg.target;
}

async function withStore<T>(inv: Invocation, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await storeFromConfig(requireTarget(configured(inv)));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function withCoordinator<T>(
  inv: Invocation,
  out: Output,
  fn: (c: SnapshotCoordinator, glance: GlanceAccess | null) => Promise<T>,
): Promise<T> {
  const cfg = configured(inv);
  const target = requireTarget(cfg);
  const glance = await openGlance(cfg);
  try {
    return await coordinate(cfg, target, glance, out, (c) => fn(c, glance));
  } finally {
    await glance?.close();
  }
}

async function coordinate<T>(
  cfg: SnapstoreConfig,
  target: TargetConfig,
  glance: GlanceAccess | null,
  out: Output,
  fn: (c: SnapshotCoordinator) => Promise<T>,
): Promise<T> {
  const { SnapshotCoordinator } = await import('../coordinator/index.js');
  const logger = (e: CoordinatorEvent) => {
    if (e.type === 'fallback') out.info(`falling back to copy: ${e.reason}`);
    else if (e.type === 'undo' && e.state === 'failed') out.info(`cleanup of ${e.what} failed: ${e.error ?? ''}`);
    // Flattened through snapstore's connection: the previous image's data crossed to this host and back.
    else if (e.type === 'flattened' && e.via === 'snapstore') out.info(`flattened ${e.imageId} through snapstore, not ceph-mgr: ${e.why ?? ''}`);
  };
  const coordinator = new SnapshotCoordinator({
    ...(cfg.source ? { source: cfg.source } : {}),
    target,
    ...(glance ? { glance: glance.client } : {}),
    logger,
  });
  try {
    return await fn(coordinator);
  } finally {
    await coordinator.close();
  }
}

/** check's findings for a Ceph connection that failed (coordinator/connection-findings.ts). */
const CONNECTION_CODES: ReadonlySet<string> = new Set(['CEPH_AUTH', 'CEPH_UNREACHABLE', 'CEPH_CONFIG']);

function renderPlan(plan: Plan): string {
  // Plan.method has no "neither"; with a connection down no snapshot can run, whatever method it names.
  const cannotConnect = plan.reasons.some((r) => !r.ok && CONNECTION_CODES.has(r.code));
  const lines = [`method: ${cannotConnect ? 'none: snapstore cannot connect to Ceph (see below)' : plan.method}`];
  for (const r of plan.reasons) {
    lines.push(`  ${r.ok ? 'ok  ' : 'NO  '} ${r.code}: ${r.message}`);
    if (r.fix) lines.push(`        fix: ${r.fix}`);
  }
  lines.push(`instant (--flatten background): ${plan.instant.possible ? 'possible' : 'NOT possible'}: ${plan.instant.reason}`);
  if (plan.instant.fix) lines.push(`        fix: ${plan.instant.fix}`);
  const by = plan.instant.flattenBy;
  if (by) {
    lines.push(`background flatten by ${by.via === 'mgr' ? 'ceph-mgr (rbd_support task queue)' : "snapstore's flattener"}: ${by.reason}`);
    if (by.fix) lines.push(`        fix: ${by.fix}`);
  }
  const inc = plan.incremental;
  if (inc) {
    const what = inc.possible ? `yes, from image ${inc.from} (about ${inc.bytesExpected} bytes to send)` : 'no';
    lines.push(`incremental (--incremental): ${what}: ${inc.reason}`);
    if (inc.flattenFirstBy?.fix) lines.push(`        fix: ${inc.flattenFirstBy.fix}`);
  }
  if (plan.linked) {
    lines.push(`linked (--flatten never): ${plan.linked.possible ? 'possible' : 'NOT possible'}`);
    for (const r of plan.linked.reasons) {
      lines.push(`  ${r.ok ? 'ok  ' : 'NO  '} ${r.code}: ${r.message}`);
      if (r.fix) lines.push(`        fix: ${r.fix}`);
    }
  }
  return lines.join('\n');
}

async function snapshot(inv: Invocation, out: Output, signal: AbortSignal): Promise<void> {
  if (inv.group) return snapshotGroup(inv, out, signal, (fn) => withCoordinator(inv, out, fn));
  const source = theArgument(inv);
  const result = await withCoordinator(inv, out, (c) =>
    c.snapshot(source, {
      mode: inv.mode,
      flatten: inv.flatten,
      ...(inv.chainSoft !== undefined || inv.chainHard !== undefined
        ? { chainLimits: { ...(inv.chainSoft !== undefined ? { soft: inv.chainSoft } : {}), ...(inv.chainHard !== undefined ? { hard: inv.chainHard } : {}) } }
        : {}),
      checksums: inv.checksums,
      ...(inv.incremental ? { incremental: true } : {}),
      ...(inv.keepCommonPoints !== undefined ? { keepCommonPoints: inv.keepCommonPoints } : {}),
      signal,
      ...(inv.imageId ? { imageId: inv.imageId } : {}),
      ...(inv.name ? { name: inv.name } : {}),
      onProgress: (p) => out.progress(p.phase, p.done, p.total),
    }),
  );
  out.endProgress();
  const human = [
    `image ${result.imageId} stored by ${result.method} in ${result.seconds.toFixed(2)} s`,
    `location ${result.location}`,
    `size ${result.sizeBytes} bytes`,
    ...(result.fallbackReason ? [`copy because: ${result.fallbackReason}`] : []),
    ...(result.incremental ? [`incremental from image ${result.incremental.from}: ${result.incremental.bytesSent} bytes sent`] : []),
    ...(result.commonPoint ? [`common point kept: ${result.commonPoint}`] : []),
    ...(result.glance ? [`glance image ${result.glance.id} is ${result.glance.status}`] : []),
    ...(result.chain ? [`linked: reads through ${result.chain.depth} image(s)${result.chain.limit === 'none' ? ', never flattened' : ` (past the ${result.chain.limit} chain limit: flattened ${result.chain.limit === 'hard' ? 'before registering' : 'in the background'})`}`] : []),
    ...(result.flatten === 'queued' ? [`flatten queued with ceph-mgr as task ${result.flattenTask ?? '?'} (it is usable now)`] : []),
    ...(result.flatten === 'pending'
      ? [`flatten pending: \`snapstore flattener\` finishes it (it is usable now)${result.flattenerReason ? `; not ceph-mgr because ${result.flattenerReason}` : ''}`]
      : []),
  ].join('\n');
  out.result(result, human);
}

async function check(inv: Invocation, out: Output): Promise<void> {
  if (inv.group) return checkGroup(inv, out, (fn) => withCoordinator(inv, out, fn));
  const { plan, glance } = await withCoordinator(inv, out, async (c, g) => ({
    plan: await c.check(theArgument(inv)),
    glance: g && { endpoint: g.endpoint, endpointFrom: g.endpointFrom, credentials: g.credentials, serviceToken: g.serviceToken },
  }));
  out.result({ ...plan, glance }, `${renderPlan(plan)}\n${describeGlance(glance)}`);
}

async function add(inv: Invocation, out: Output, signal: AbortSignal): Promise<void> {
  const file = theArgument(inv);
  let size = inv.size;
  if (file !== '-') {
    let st: Stats;
    try {
      st = statSync(file);
    } catch {
      throw new UsageError(`cannot read ${file}`);
    }
    if (!st.isFile()) throw new UsageError(`${file} is not a regular file`);
    if (size !== undefined && size !== st.size) throw new UsageError(`--size ${size} but ${file} has ${st.size} bytes`);
    size = st.size;
  }
  const imageId = inv.imageId ?? randomUUID();
  const result = await withStore(inv, (store) =>
    store.add(imageId, file === '-' ? process.stdin : createReadStream(file), size, { signal }),
  );
  out.result({ imageId, ...result }, `stored ${imageId}: ${result.location} (${result.size} bytes, md5 ${result.checksum})`);
}

async function get(inv: Invocation, out: Output): Promise<void> {
  const location = theArgument(inv);
  if (inv.json && !inv.output) throw new UsageError('get --json needs -o FILE: stdout carries the JSON');
  await withStore(inv, async (store) => {
    const data = await store.get(location);
    if (!inv.output) {
      await pipeline(data, process.stdout);
      return;
    }
    // Written next to the destination and renamed, so a failed read leaves no partial file.
    const dest = resolve(inv.output);
    const tmp = join(dirname(dest), `.${basename(dest)}.snapstore-${process.pid}`);
    try {
      await pipeline(data, createWriteStream(tmp, { flags: 'wx' }));
      renameSync(tmp, dest);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    out.result({ location, output: dest, sizeBytes: statSync(dest).size }, `wrote ${dest}`);
  });
}

async function size(inv: Invocation, out: Output): Promise<void> {
  const location = theArgument(inv);
  const sizeBytes = await withStore(inv, (store) => store.getSize(location));
  out.result({ location, sizeBytes }, String(sizeBytes));
}

async function remove(inv: Invocation, out: Output): Promise<void> {
  const location = theArgument(inv);
  await withStore(inv, (store) => store.delete(location));
  out.result({ location, deleted: true }, `deleted ${location}`);
}

async function gc(inv: Invocation, out: Output): Promise<void> {
  const report = await withCoordinator(inv, out, (c) =>
    c.gc({ dryRun: inv.dryRun, scanImages: inv.scanImages, ...(inv.olderThanSeconds !== undefined ? { olderThanMs: inv.olderThanSeconds * 1000 } : {}) }),
  );
  const verb = report.dryRun ? 'would remove' : 'removed';
  const list = report.dryRun ? report.found : report.removed;
  // Every leftover seen, with what gc did and why: kept ones too (a live lease, a live owner).
  const lines = report.seen.map((l) => `  ${l.action}${l.why ? `: ${l.why}` : ''} — ${l.kind} ${l.location}`);
  const human = [`found ${report.found.length} leftover(s); ${verb} ${list.length}`, ...lines].join('\n');
  out.result(report, human);
}

async function flattener(inv: Invocation, out: Output, signal: AbortSignal): Promise<void> {
  const cfg = configured(inv);
  const target = requireTarget(cfg);
  if (target.kind !== 'rbd') throw new UsageError('the flattener works on an RBD image store; the configured store is a directory');
  if (!cfg.source) {
    throw new UsageError('the flattener needs the disks\' cluster (a nova.conf with [libvirt] images_rbd_*): flattening reads the disks');
  }
  const { Flattener } = await import('../coordinator/index.js');
  // Ctrl-C (the caller's signal) or SIGTERM: the image being flattened stays queued for the next flattener.
  const stop = new AbortController();
  const onStop = () => stop.abort();
  signal.addEventListener('abort', onStop, { once: true });
  process.once('SIGTERM', onStop);
  const logger = (e: FlattenerEvent) => {
    if (e.type === 'progress') out.progress('flatten', e.done, e.total);
    else if (e.type === 'lock-broken') out.info(`broke the lock on ${e.image} held by ${e.holder}: ${e.why}`);
    else if (e.type === 'mgr-takeover') out.info(`${e.image}: taken over from ceph-mgr: ${e.why}`);
    else if (e.state !== 'start') {
      out.endProgress();
      out.info(`${e.image}: ${e.state}${e.why ? ` (${e.why})` : ''}`);
    }
  };
  const common = {
    target,
    ...(inv.positionals.length ? { images: inv.positionals } : {}),
    ...(inv.scanImages ? { scanImages: true } : {}),
    storeUser: target,
    ...(inv.staleLockSeconds !== undefined ? { staleLockMs: inv.staleLockSeconds * 1000 } : {}),
    logger,
  };
  // Instant snapshots are flattened through the disks' cluster (they read the disks). An image store in
  // another cluster holds incremental snapshots made from earlier images there: its own user flattens those.
  const flatteners = [new Flattener({ source: cfg.source, ...common })];
  if (target.confPath !== cfg.source.confPath) flatteners.push(new Flattener({ source: target, ...common }));
  try {
    if (inv.status) {
      const all = await Promise.all(flatteners.map((f) => f.status()));
      const status = { images: all.flatMap((x) => x.images), mgrError: all.find((x) => x.mgrError)?.mgrError ?? null };
      const human = [
        `${status.images.length} queued flatten(s)${status.mgrError ? ` (ceph-mgr's queue: ${status.mgrError})` : ''}`,
        ...status.images.map((i) => `  ${i.image} ${i.by === 'mgr' ? `ceph-mgr task ${i.taskId ?? '?'}` : 'flattener'}: ${i.state} — ${i.detail}`),
      ].join('\n');
      out.result(status, human);
      return;
    }
    if (!inv.once) {
      out.info(`flattener: watching pool ${target.pool}; SIGINT or SIGTERM stops it`);
      await Promise.all(flatteners.map((f) => f.run({ signal: stop.signal })));
      out.result({ stopped: true }, 'flattener stopped');
      return;
    }
    const reports = [];
    for (const f of flatteners) reports.push(await f.runOnce({ signal: stop.signal }));
    // An image named on the command line is in one of the clusters: the other one skips it as not queued.
    const flattenedAll = new Set(reports.flatMap((r) => r.flattened));
    const report = {
      flattened: [...flattenedAll],
      skipped: reports.flatMap((r) => r.skipped).filter((x) => !flattenedAll.has(x.image)),
      failed: reports.flatMap((r) => r.failed),
    };
    out.endProgress();
    if (report.failed.length > 0) {
      throw new SnapstoreError('FLATTEN_FAILED', `flattening failed for ${report.failed.map((x) => `${x.image} (${x.error})`).join('; ')}`, {
        context: { failed: report.failed.map((x) => x.image), flattened: report.flattened },
      });
    }
    const human = [
      `flattened ${report.flattened.length} image(s)${report.flattened.length ? `: ${report.flattened.join(', ')}` : ''}`,
      ...report.skipped.map((x) => `  skipped ${x.image}: ${x.why}`),
    ].join('\n');
    out.result(report, human);
  } finally {
    process.off('SIGTERM', onStop);
    signal.removeEventListener('abort', onStop);
    await Promise.all(flatteners.map((f) => f.close()));
  }
}

export async function runCommand(inv: Invocation, out: Output, signal: AbortSignal): Promise<void> {
  switch (inv.command) {
    case 'snapshot':
      return snapshot(inv, out, signal);
    case 'check':
      return check(inv, out);
    case 'add':
      return add(inv, out, signal);
    case 'get':
      return get(inv, out);
    case 'size':
      return size(inv, out);
    case 'delete':
      return remove(inv, out);
    case 'gc':
      return gc(inv, out);
    case 'flattener':
      return flattener(inv, out, signal);
  }
}
