// The rule by which snapstore's flattener leaves a flatten to ceph-mgr or takes it over, on task lists in
// the shape `rbd task list` prints (copied from Ceph 16's rbd_support output): pure logic, no cluster.
import { describe, expect, it } from 'vitest';
import { MGR_GRACE_MS, mgrVerdict, taskState, type MgrTask } from '../../src/coordinator/mgr-flatten.js';

const refs = { action: 'flatten', pool_name: 'images', pool_namespace: '', image_name: 'img', image_id: '10ab' };
const queued: MgrTask = { sequence: 1, id: 't-queued', message: 'Flattening image images/img', refs };
const running: MgrTask = { ...queued, id: 't-running', in_progress: true, progress: 0.42 };
const failed: MgrTask = { ...queued, id: 't-failed', retry_attempts: 2, retry_message: '[errno 16] RBD image busy', retry_time: '2026-12-02T03:00:00' };
const tasks = [queued, running, failed];
const now = Date.parse('2026-12-02T04:00:00Z');

describe('ceph-mgr task states and the flattener\'s verdict', () => {
  it('reads queued, running with its percentage, failed with Ceph\'s message, and gone', () => {
    expect(taskState(tasks, 't-queued')).toEqual({ state: 'queued' });
    expect(taskState(tasks, 't-running')).toEqual({ state: 'running', progress: 0.42 });
    expect(taskState(tasks, 't-failed')).toEqual({ state: 'failed', message: '[errno 16] RBD image busy', attempts: 2 });
    expect(taskState(tasks, 'other')).toEqual({ state: 'gone' });
  });

  it('leaves queued and running tasks to the mgr; takes a failed one (cancelling it) and a vanished one', () => {
    const at = new Date(now).toISOString();
    expect(mgrVerdict({ tasks }, 't-queued', at, now)).toMatchObject({ take: false, why: expect.stringContaining('being flattened by ceph-mgr') });
    expect(mgrVerdict({ tasks }, 't-running', at, now)).toMatchObject({ take: false, why: expect.stringContaining('running (42%)') });
    expect(mgrVerdict({ tasks }, 't-failed', at, now)).toEqual({ take: true, why: expect.stringContaining('RBD image busy'), cancel: 't-failed' });
    expect(mgrVerdict({ tasks }, 'gone', at, now)).toEqual({ take: true, why: expect.stringContaining('gone from the queue'), cancel: null });
  });

  it('without a view of the queue leaves the task to the mgr for the grace period, then takes it', () => {
    const recent = new Date(now - MGR_GRACE_MS + 60_000).toISOString();
    const old = new Date(now - MGR_GRACE_MS - 60_000).toISOString();
    expect(mgrVerdict({ error: 'EACCES' }, 't', recent, now)).toMatchObject({ take: false });
    expect(mgrVerdict(null, 't', recent, now)).toMatchObject({ take: false });
    expect(mgrVerdict({ error: 'EACCES' }, 't', old, now)).toMatchObject({ take: true, cancel: null, why: expect.stringContaining('cannot be read (EACCES)') });
  });
});
