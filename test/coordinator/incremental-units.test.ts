// The names of incremental snapshots (no cluster needed): a run's common point is a snapshot its run
// record and pending mark may name (gc then removes it with a killed run), and no other run's is; and the
// pairing a disk records is read back only when its key names its own snapshot.
import { describe, expect, it } from 'vitest';
import { commonPointName, decodePendingMarker, decodeRunRecord, encodeMark, newRunId, pendingMarker, runIdOfSnap } from '../../src/coordinator/names.js';

describe('common point names', () => {
  it('a run record and a pending mark may name their own run’s common point, not another’s', () => {
    const runId = newRunId();
    const mark = pendingMarker(runId, 'copy', 'rbd://f/vms/disk', commonPointName(runId));
    expect(decodePendingMarker(encodeMark(mark))).toMatchObject({ runId, sourceSnap: commonPointName(runId) });
    const record = { ...mark, target: 'rbd://g/images/x/snap', imageId: 'x', glance: null };
    expect(decodeRunRecord(encodeMark(record))).toMatchObject({ runId, sourceSnap: commonPointName(runId) });
    const other = commonPointName(newRunId());
    expect(decodePendingMarker(encodeMark({ ...mark, sourceSnap: other }))).toBeNull();
    expect(decodeRunRecord(encodeMark({ ...record, sourceSnap: other }))).toBeNull();
  });

  it('gc’s scan for orphaned run snapshots never takes a common point for one', () => {
    expect(runIdOfSnap(commonPointName(newRunId()))).toBeNull();
  });
});
