/**
 * Measures event-loop delay with a 10 ms interval timer between start and stop.
 * @param {{ stalls?: string }} [opts] stalls: the log of a running stall recorder (startStallRecorder)
 * @returns {{ stop: () => LagReport }}
 */
export function lagMonitor(opts?: {
    stalls?: string;
}): {
    stop: () => LagReport;
};
/**
 * Starts a stall recorder: another process running the same 10 ms timer, which appends to `file` each
 * interval it was held up beyond its own run-queue waits. Start it before the monitors that read it.
 * @param {string} file
 * @returns {{ pid: number | undefined, stop: () => void }}
 */
export function startStallRecorder(file: string): {
    pid: number | undefined;
    stop: () => void;
};
export type LagReport = {
    /**
     * Worst delay of a 10 ms interval timer, as the event loop saw it.
     */
    worstMs: number;
    /**
     * Worst delay once the time this thread waited on the run queue during that
     * tick is taken out: what code in this process kept the loop from running. Equals worstMs where
     * /proc/thread-self/schedstat is unavailable.
     */
    worstOwnMs: number;
    ticks: number;
    /**
     * With `stalls`: worstOwnMs once the time the stall recorder was held
     * up too during that tick (a stop of the whole machine) is taken out as well.
     */
    worstUnsharedMs?: number | undefined;
    /**
     * With `stalls`: the longest hold-up of the stall recorder while the
     * monitor ran, i.e. the longest stop of the whole machine.
     */
    worstStallMs?: number | undefined;
};
