/**
 * Measures event-loop delay with a 10 ms interval timer between start and stop.
 * @returns {{ stop: () => LagReport }}
 */
export function lagMonitor(): {
    stop: () => LagReport;
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
};
