using System.Text.Json;
using System.Text.Json.Serialization;
using Shootdown.Observe;

namespace Shootdown.Reports;

/// <summary>The outcome of one run, in the shape of `shootdown run --format json`.</summary>
public sealed record RunResult
{
    public required string Policy { get; init; }
    public required string Workload { get; init; }
    public required string Machine { get; init; }
    public required double ElapsedS { get; init; }
    public required double UserS { get; init; }
    public required double SystemS { get; init; }
    /// <summary>All interrupts (TLB shootdowns + local timer) per second in the steady phase, as vmstat's "in".</summary>
    public required double InterruptsPerS { get; init; }
    public required long TlbIpis { get; init; }
    public required double TlbIpisPerS { get; init; }
    /// <summary>TLB-flush IPIs by what the flush was for: reclaim, migration, numa_pte_updates (change_prot_numa), other.</summary>
    public required SortedDictionary<string, long> TlbIpisByCause { get; init; }
    public required long PagesReclaimed { get; init; }
    /// <summary>pgmigrate_success, and per second of elapsed time.</summary>
    public required long PagesMigrated { get; init; }
    public required double PagesMigratedPerS { get; init; }
    public required long PagesRead { get; init; }
    /// <summary>
    /// vm-scalability's throughput (lkp-tests' stats/vm-scalability): each reader's KiB over its own
    /// run — usemem's "bytes / usecs = KB/s", dd's "bytes copied, s" — summed over the readers;
    /// 0 for workloads without readers.
    /// </summary>
    public required double ThroughputKbps { get; init; }
    public required long DirectReclaimStalls { get; init; }
    /// <summary>Share of reclaimed pages that kswapd (not direct reclaim) freed.</summary>
    public required double KswapdEfficiency { get; init; }
    /// <summary>
    /// Reclaim efficiency as mmtests reports it: pages reclaimed over pages scanned (pgsteal over
    /// pgscan, kswapd and direct together); 0 when nothing was scanned.
    /// </summary>
    public required double ReclaimEfficiency { get; init; }
    /// <summary>The workload's page faults in the steady phase cut into about a hundred intervals: how many intervals saw (nearly) none.</summary>
    public required SteadyFaultStats SteadyFaults { get; init; }
    public required double SpinS { get; init; }
    public required double IpiWaitS { get; init; }
    public required double IrqS { get; init; }
    /// <summary>
    /// The CPU time of steps run by a thread none of whose core's other threads was busy, at the
    /// lone thread's speed (<see cref="Hardware.CostModel.SmtThroughputPct"/>): with hyperthreads the
    /// runs' tails, a closing `rm` on its own, kswapd beside idle siblings; with one thread a core
    /// every step. 0 at <c>smt_throughput_pct</c> 200, where a lone thread is no faster.
    /// </summary>
    public required double LoneThreadS { get; init; }
    /// <summary>
    /// What /usr/bin/time reports for the benchmark (mmtests wraps each test in it): the CPU time of
    /// the workload's processes — their steps, their late IPI waits and the interrupt handlers that
    /// ran while they were on a CPU — without kernel threads (kswapd, the flusher) or idle CPUs'
    /// handlers, which `user_s` and `system_s` include.
    /// </summary>
    public required double BenchmarkUserS { get; init; }
    public required double BenchmarkSystemS { get; init; }
    /// <summary>IPIs to a busy CPU whose state at their arrival was not simulated yet when they were sent, resolved by an event at the arrival.</summary>
    public required IpiArrivalStats IpisResolvedAtArrival { get; init; }
    /// <summary>Call-function IPIs (all of them, however resolved) whose busy receiver had interrupts off at the arrival, and how long their handlers waited for interrupts to come on (summed over receivers).</summary>
    public required IrqOffStats IpisFoundInterruptsOff { get; init; }
    /// <summary>Call-function requests (TLB flushes, pcp drains) to one CPU that found its call_single_queue pending and sent no IPI: 4.0's generic_exec_single; the pending IPI's handler ran them.</summary>
    public required long IpiRequestsCoalesced { get; init; }
    /// <summary>irq_call_count summed over CPUs: call-function interrupts taken (TLB flushes and others), what /proc/stat's interrupt total adds to the timer ticks here.</summary>
    public required long CallFunctionInterrupts { get; init; }
    /// <summary>When the workload's tasks exited: the first, the median and the last (the run's end), and how many did.</summary>
    public required TaskExitStats TaskExits { get; init; }
    /// <summary>
    /// Each task started with the run (the readers, the pmbench threads, ...), in start order: its
    /// own elapsed, user and system time, what /usr/bin/time reports per process (mmtests' vmscale
    /// takes its time_range and time_stddv from these).
    /// </summary>
    public required IReadOnlyList<TaskTimes> Tasks { get; init; }
    /// <summary>Page cache dropped when files were removed (lru-file-mmap-read's closing rm): pages freed and when it began; null when no file was removed.</summary>
    public TruncateStats? Truncate { get; init; }
    /// <summary>mm/workingset.c's bookkeeping: inactive_age increments and the shadow-node list's adds and deletes (<see cref="Kernel.Mm.Workingset"/>).</summary>
    public required WorkingsetStats Workingset { get; init; }
    public required double SteadyStartS { get; init; }
    public required double SteadyEndS { get; init; }
    public required SortedDictionary<string, long> Vmstat { get; init; }
    /// <summary>
    /// The zone counters' per-CPU differentials (mm/vmstat.c): how many folds into the zone's and
    /// the global counters the run made, the time they took (locked adds and line transfers, inside
    /// whatever section made them) and the time reading counter lines other CPUs had written (the
    /// allocator's watermark checks).
    /// </summary>
    public required ZoneCounterStats ZoneCounters { get; init; }
    /// <summary>
    /// /proc/interrupts' rows, summed over the CPUs: LOC (timer ticks), RES (rescheduling IPIs),
    /// TLB (flush_tlb_func runs) and CAL (call-function IPIs less TLB, as x86 shows it).
    /// </summary>
    public required SortedDictionary<string, long> Interrupts { get; init; }
    /// <summary>Per lock class (summed over instances): acquisitions, contended ones, spin and hold time.</summary>
    public required SortedDictionary<string, LockStats> Locks { get; init; }
    /// <summary>
    /// System time by kernel path (what the step did: "fault+read", "direct reclaim", "kswapd
    /// reclaim", ...), each with its spinning and IPI-wait parts; "irq: IPI handlers" is the
    /// receivers' interrupt time. The entries sum to system_s (timer ticks aside).
    /// </summary>
    public required SortedDictionary<string, PathStats> SystemByPath { get; init; }
    /// <summary>All interrupts in each simulated second.</summary>
    public required long[] InterruptsPerSecond { get; init; }
    /// <summary>
    /// The batching policies' flushes by cause ("reclaim", "migration"): how many, their pages and
    /// mms, and the other CPUs their cpumask named (running a batched mm, idle or lazy, running
    /// another mm), with a histogram of flushes by that count; null for a run whose policy batched
    /// nothing (vanilla).
    /// </summary>
    public SortedDictionary<string, BatchFlushReport>? TlbBatchFlushes { get; init; }
    /// <summary>The coherence oracle's findings (null when the oracle was off).</summary>
    public SafetyReport? Safety { get; init; }
    public required long Events { get; init; }
    public required double WallS { get; init; }
    public required double SimPagesPerWallS { get; init; }
    public required RunConfig Config { get; init; }

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    private static SortedDictionary<string, long> IpisByCause(Sim sim)
    {
        var d = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (FlushCause c in Enum.GetValues<FlushCause>())
        {
            d[FlushCauseNames.Of(c)] = sim.X86.IpisByCause[(int)c];
        }
        return d;
    }

    public static RunResult From(Sim sim, double wallSeconds)
    {
        const double ns = 1e9;
        long user = 0, sys = 0, spin = 0, ipiWait = 0, irq = 0, tlb = 0, loc = 0, res = 0, cal = 0, calShown = 0, calls = 0;
        foreach (var c in sim.Cpus)
        {
            user += c.UserNs;
            sys += c.SysNs;
            spin += c.SpinNs;
            ipiWait += c.IpiWaitNs;
            irq += c.IrqNs;
            tlb += c.TlbShootdowns;
            loc += c.TimerTicks;
            res += c.ReschedIrqs;
            cal += c.CallFunctionIrqs - c.OtherCallFunctionIrqs; // the TLB-flushing ones
            calShown += Observe.ProcFiles.CalShown(c);
            calls += c.CallFunctionIrqs;
        }
        long benchUser = 0, benchSys = 0;
        foreach (var t in sim.UserTasks)
        {
            benchUser += t.UserNs;
            benchSys += t.SysNs;
        }
        long elapsed = sim.LastExit;
        long steadyFrom = sim.FirstKswapdWake >= 0 ? sim.FirstKswapdWake : 0;
        long steadyTo = sim.FirstExit > steadyFrom ? sim.FirstExit : elapsed;
        var (intr, span) = sim.Headline.SumWithin(Series.Interrupts, steadyFrom, steadyTo);
        var (ipis, _) = sim.Headline.SumWithin(Series.TlbIpis, steadyFrom, steadyTo);
        if (span == 0)
        {
            // Too short for whole buckets: fall back to the whole run.
            (intr, span) = sim.Headline.SumWithin(Series.Interrupts, 0, long.MaxValue / 2);
            (ipis, _) = sim.Headline.SumWithin(Series.TlbIpis, 0, long.MaxValue / 2);
            span = Math.Max(1, Math.Min(span, elapsed));
        }
        VmStat v = sim.VmStat;
        long reclaimed = v[VmEvent.pgsteal_kswapd] + v[VmEvent.pgsteal_direct];
        long scanned = v[VmEvent.pgscan_kswapd] + v[VmEvent.pgscan_direct];
        int seconds = (int)((elapsed + 999_999_999) / 1_000_000_000);
        var perSecond = new long[seconds];
        long bucketsPerSecond = 1_000_000_000 / sim.Headline.IntervalNs;
        for (int b = 0; b < sim.Headline.Buckets; b++)
        {
            int s = (int)(b / bucketsPerSecond);
            if (s < seconds)
            {
                perSecond[s] += sim.Headline.Get(Series.Interrupts, b);
            }
        }
        var locks = new SortedDictionary<string, LockStats>(StringComparer.Ordinal);
        void Add(string cls, long acquisitions, long contended, long spinNs, long holdNs, long acquireNs, int maxQueued, long stealNs = 0)
        {
            locks.TryGetValue(cls, out LockStats? st);
            st ??= new LockStats();
            locks[cls] = st with
            {
                Acquisitions = st.Acquisitions + acquisitions,
                Contended = st.Contended + contended,
                SpinS = st.SpinS + spinNs / ns,
                HoldS = st.HoldS + holdNs / ns,
                AcquireS = st.AcquireS + acquireNs / ns,
                LineStealS = st.LineStealS + stealNs / ns,
                MaxQueued = Math.Max(st.MaxQueued, maxQueued),
            };
        }
        void AddLock(string cls, Kernel.SpinLock l) => Add(cls, l.Acquisitions, l.Contended, l.SpinNs, l.HoldNs, l.AcquireNs, l.MaxLive, l.StealNs);
        foreach (var z in sim.Memory.Zones)
        {
            AddLock("lru_lock", z.LruLock);
            AddLock("zone->lock", z.Lock);
        }
        foreach (var f in sim.Files)
        {
            AddLock("mapping->tree_lock", f.TreeLock);
        }
        foreach (var l in sim.Workingset.ShadowNodesLocks)
        {
            AddLock("workingset_shadow_nodes", l);
        }
        foreach (var mm in sim.Mms)
        {
            foreach (Kernel.SpinLock l in mm.LivePtls)
            {
                AddLock("ptl", l);
            }
            if (mm.PtlAcquisitions > 0)
            {
                Add("ptl", mm.PtlAcquisitions, mm.PtlContended, mm.PtlSpinNs, mm.PtlHoldNs, mm.PtlAcquireNs, mm.PtlMaxQueued); // locks already dropped
            }
        }
        var paths = new SortedDictionary<string, PathStats>(StringComparer.Ordinal);
        foreach (var (what, p) in sim.Sched.SystemByPath)
        {
            paths[what] = new PathStats { SystemS = p.SysNs / ns, SpinS = p.SpinNs / ns, IpiWaitS = p.IpiWaitNs / ns, Steps = p.Steps };
        }
        paths["irq: IPI handlers"] = new PathStats { SystemS = irq / ns };
        return new RunResult
        {
            SystemByPath = paths,
            Policy = sim.Config.PolicyName,
            Workload = sim.Config.Workload,
            Machine = sim.Config.Machine,
            ElapsedS = elapsed / ns,
            UserS = user / ns,
            SystemS = sys / ns,
            InterruptsPerS = intr * ns / span,
            TlbIpis = cal,
            TlbIpisPerS = ipis * ns / span,
            PagesReclaimed = reclaimed,
            TlbIpisByCause = IpisByCause(sim),
            PagesMigrated = v[VmEvent.pgmigrate_success],
            PagesMigratedPerS = elapsed > 0 ? v[VmEvent.pgmigrate_success] * ns / elapsed : 0,
            PagesRead = sim.PagesDone,
            DirectReclaimStalls = v[VmEvent.allocstall],
            KswapdEfficiency = reclaimed == 0 ? 0 : (double)v[VmEvent.pgsteal_kswapd] / reclaimed,
            ReclaimEfficiency = scanned == 0 ? 0 : (double)reclaimed / scanned,
            SteadyFaults = SteadyFaultStats.Of(sim.FaultsFine, steadyFrom, steadyTo),
            SpinS = spin / ns,
            IpiWaitS = ipiWait / ns,
            IrqS = irq / ns,
            LoneThreadS = sim.Sched.LoneNs / ns,
            BenchmarkUserS = benchUser / ns,
            BenchmarkSystemS = benchSys / ns,
            IpisResolvedAtArrival = new IpiArrivalStats
            {
                Ipis = sim.X86.DeferredIpis,
                FoundInterruptsOff = sim.X86.DeferredIpisIrqOff,
                LateWaitS = sim.X86.LateWaitNs / ns,
                RequestsRequeued = sim.X86.RedeferredRequests,
            },
            IpisFoundInterruptsOff = new IrqOffStats
            {
                Ipis = sim.X86.IrqOffIpis,
                AtSend = sim.X86.IrqOffIpisAtSend,
                DelayS = sim.X86.IrqOffDelayNs / ns,
                IpisToBusyCpus = sim.X86.BusyIpis,
                RepeatIpisToBusyCpus = sim.X86.BusyIpisRepeat,
                Repeat = sim.X86.IrqOffIpisRepeat,
                BehindHandler = sim.X86.BehindHandlerIpis,
                BehindHandlerDelayS = sim.X86.BehindHandlerDelayNs / ns,
            },
            IpiRequestsCoalesced = sim.X86.CoalescedRequests,
            TlbBatchFlushes = sim.Policy.BatchFlushes.Report(),
            CallFunctionInterrupts = calls,
            TaskExits = TaskExitStats.Of(sim.UserTasks),
            Tasks = TaskTimes.Of(sim.UserTasks),
            ThroughputKbps = sim.ReaderThroughputKbps,
            Truncate = sim.Truncate.StartedAt < 0 ? null : new TruncateStats
            {
                Pages = sim.Truncate.PagesTruncated,
                StartS = sim.Truncate.StartedAt / ns,
                SystemS = sim.Sched.SystemByPath.TryGetValue("truncate", out var tp) ? tp.SysNs / ns : 0,
            },
            Workingset = new WorkingsetStats
            {
                Evictions = sim.Workingset.Evictions,
                Activations = sim.Workingset.Activations,
                InactiveAgeS = sim.Workingset.InactiveAgeNs / ns,
                ShadowNodesAdded = sim.Workingset.ShadowNodesAdded,
                ShadowNodesDeleted = sim.Workingset.ShadowNodesDeleted,
            },
            SteadyStartS = steadyFrom / ns,
            SteadyEndS = steadyTo / ns,
            Vmstat = v.ToDictionary(),
            ZoneCounters = new ZoneCounterStats
            {
                Folds = sim.ZoneStats.Folds,
                FoldTimeS = sim.ZoneStats.FoldNs / ns,
                ReadS = sim.ZoneStats.ReadNs / ns,
                PressureShare = elapsed > 0 ? sim.ZoneStats.PressureNs(elapsed) / (elapsed * (double)sim.Config.Nodes) : 0,
            },
            Interrupts = new SortedDictionary<string, long>(StringComparer.Ordinal) { ["LOC"] = loc, ["RES"] = res, ["TLB"] = tlb, ["CAL"] = calShown },
            InterruptsPerSecond = perSecond,
            Locks = locks,
            Safety = sim.Oracle is { } o ? new SafetyReport
            {
                Violations = o.LostWrites + o.StaleAccessesAfterFree + o.WritesAfterProtect,
                LostWrite = o.LostWrites,
                StaleAccessAfterFree = o.StaleAccessesAfterFree,
                WriteAfterProtect = o.WritesAfterProtect,
                First = o.Violations.Count > 0 ? o.Violations[0] : null,
                Stopped = sim.Stopped,
                StoppedBy = o.StoppedBy,
            } : null,
            Events = sim.EventsProcessed,
            WallS = wallSeconds,
            SimPagesPerWallS = wallSeconds > 0 ? (sim.PagesDone + reclaimed) / wallSeconds : 0,
            Config = sim.Config,
        };
    }
}

/// <summary>Names of the causes in tlb_ipis_by_cause.</summary>
public static class FlushCauseNames
{
    public static string Of(FlushCause c) => c switch
    {
        FlushCause.Reclaim => "reclaim",
        FlushCause.Migration => "migration",
        FlushCause.NumaPteUpdates => "numa_pte_updates",
        _ => "other",
    };
}

/// <summary>System time of one kernel path over a run, with its spinning and IPI-wait parts.</summary>
public sealed record PathStats
{
    public double SystemS { get; init; }
    public double SpinS { get; init; }
    public double IpiWaitS { get; init; }
    public long Steps { get; init; }
}

/// <summary>
/// The "steady_faults" object of a run's JSON: the steady phase (from kswapd's first wake to the
/// first task's exit) cut into <see cref="IntervalsWanted"/> equal intervals (whole milliseconds of
/// simulated time, the last partial one dropped), the workload's page faults (pgfault) in each,
/// and how many intervals had fewer than a tenth of the 90th percentile's faults — intervals in
/// which the readers as a whole made (nearly) no progress, each of them in the allocator's reclaim.
/// Cut so, runs of any scale and machine are counted alike. Reclaim runs in such waves when the
/// pages at the inactive lists' tails are ones no scan has seen yet: a mapped page used once is
/// kept at its first scan and freed at its second (page_check_references, 645747462435), so every
/// reclaimer scans without freeing until the kept pages come round again ("Reclaim runs in waves"
/// in the README).
/// </summary>
public sealed record SteadyFaultStats
{
    /// <summary>One interval in simulated seconds (times the scale divisor: in the full-size machine's).</summary>
    public double IntervalLengthS { get; init; }

    /// <summary>Whole intervals inside the steady phase; 0 when it holds fewer than five.</summary>
    public int Intervals { get; init; }

    /// <summary>The 90th percentile of the intervals' fault counts.</summary>
    public long P90Faults { get; init; }

    /// <summary>Intervals with fewer faults than a tenth of <see cref="P90Faults"/>.</summary>
    public int Stalled { get; init; }

    /// <summary><see cref="Stalled"/> over <see cref="Intervals"/> (0 when there are none).</summary>
    public double StalledShare { get; init; }

    /// <summary>The intervals' mean fault count over <see cref="P90Faults"/>: 1 for steady progress, lower the more it comes in bursts.</summary>
    public double MeanOverP90 { get; init; }

    internal const int MinIntervals = 5;

    /// <summary>How many intervals the steady phase is cut into.</summary>
    public const int IntervalsWanted = 100;

    /// <summary>
    /// The steady phase [<paramref name="fromNs"/>, <paramref name="toNs"/>) cut into about
    /// <see cref="IntervalsWanted"/> intervals, each a whole number of <paramref name="series"/>'
    /// buckets (at least one).
    /// </summary>
    public static SteadyFaultStats Of(TimeSeries series, long fromNs, long toNs)
    {
        long first = (fromNs + series.IntervalNs - 1) / series.IntervalNs;
        long last = Math.Min(toNs / series.IntervalNs, series.Buckets);
        long group = Math.Max(1, (last - first) / IntervalsWanted);
        return Of(series, first, last, group);
    }

    /// <summary>The statistics over the whole groups of <paramref name="group"/> consecutive buckets in [<paramref name="firstBucket"/>, <paramref name="lastBucket"/>).</summary>
    public static SteadyFaultStats Of(TimeSeries series, long firstBucket, long lastBucket, long group)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(group);
        var result = new SteadyFaultStats { IntervalLengthS = group * series.IntervalNs / 1e9 };
        long n = Math.Max(0, lastBucket - firstBucket) / group;
        if (n < MinIntervals)
        {
            return result;
        }
        var counts = new long[n];
        long sum = 0;
        for (long i = 0; i < n; i++)
        {
            for (long b = firstBucket + i * group; b < firstBucket + (i + 1) * group; b++)
            {
                counts[i] += series.Get(Series.Faults, (int)b);
            }
            sum += counts[i];
        }
        long[] sorted = (long[])counts.Clone();
        Array.Sort(sorted);
        long p90 = sorted[(int)(0.9 * (sorted.Length - 1))];
        int stalled = 0;
        foreach (long c in counts)
        {
            if (c * 10 < p90)
            {
                stalled++;
            }
        }
        return result with
        {
            Intervals = counts.Length,
            P90Faults = p90,
            Stalled = stalled,
            StalledShare = (double)stalled / counts.Length,
            MeanOverP90 = p90 == 0 ? 0 : (double)sum / counts.Length / p90,
        };
    }
}

/// <summary>The "ipis_resolved_at_arrival" object of a run's JSON.</summary>
public sealed record IpiArrivalStats
{
    /// <summary>IPIs sent to a busy CPU whose state at the arrival was not simulated yet.</summary>
    public long Ipis { get; init; }

    /// <summary>Of those, the ones that found the receiver with interrupts off (spinning on or holding an irq-safe lock).</summary>
    public long FoundInterruptsOff { get; init; }

    /// <summary>Sender wait beyond what the senders' steps assumed (included in ipi_wait_s and system_s).</summary>
    public double LateWaitS { get; init; }

    /// <summary>Requests to one CPU found, when resolved, to have been queued behind an IPI still on its way that was simulated after them: they ride on it and are resolved again at its arrival.</summary>
    public long RequestsRequeued { get; init; }
}

/// <summary>The "ipis_found_interrupts_off" object of a run's JSON.</summary>
public sealed record IrqOffStats
{
    /// <summary>IPIs that reached a busy CPU with interrupts off: spinning on or holding an irq-safe lock (lru_lock, zone->lock, tree_lock), or running another interrupt's handler.</summary>
    public long Ipis { get; init; }

    /// <summary>Of those, the ones whose receiver's state at the arrival was known when they were sent (the others are ipis_resolved_at_arrival's found_interrupts_off).</summary>
    public long AtSend { get; init; }

    /// <summary>Their handlers' wait for interrupts to come on, summed over receivers. A sender waits for its slowest receiver only, so with several receivers held off in one call (batched flushes, drain_all_pages) the sum exceeds what the senders waited.</summary>
    public double DelayS { get; init; }

    /// <summary>Every IPI (however resolved) that reached a busy CPU, interrupts on or off: the share <see cref="Ipis"/> is of.</summary>
    public long IpisToBusyCpus { get; init; }

    /// <summary>Of <see cref="IpisToBusyCpus"/>, those to a CPU the sender's previous call (smp_call_function_*) also sent to.</summary>
    public long RepeatIpisToBusyCpus { get; init; }

    /// <summary>Of <see cref="Ipis"/>, those to a CPU the sender's previous call also sent to.</summary>
    public long Repeat { get; init; }

    /// <summary>Of <see cref="Ipis"/>, those whose wait ended with the return of another handler on the receiver (x86 runs hardirq handlers with interrupts off), not with the end of an interrupts-off section of its work.</summary>
    public long BehindHandler { get; init; }

    /// <summary>The part of <see cref="DelayS"/> spent waiting for other handlers to return.</summary>
    public double BehindHandlerDelayS { get; init; }
}

/// <summary>
/// The "task_exits" object of a run's JSON: when the workload's tasks (the readers, the pmbench
/// threads, ...) exited, in simulated seconds from the start. The run ends with the last; the
/// steady phase ends with the first. Their spread is the run's tail, during which fewer tasks
/// compete (README, "Part of the 4-node difference is the end of the run").
/// </summary>
public sealed record TaskExitStats
{
    /// <summary>Tasks that exited (all of the workload's, unless the run was stopped).</summary>
    public int Exited { get; init; }

    /// <summary>The first exit (0 when none exited).</summary>
    public double FirstS { get; init; }

    /// <summary>The median exit: the middle one of an odd count, the mean of the two middle ones of an even count.</summary>
    public double MedianS { get; init; }

    /// <summary>The last exit (0 when none exited).</summary>
    public double LastS { get; init; }

    /// <summary>
    /// Tasks started with the run that exited — the readers of the reading workloads (not the case
    /// script's rm, which another task wakes), every task of the store and migration workloads,
    /// their helpers included — whose elapsed times <see cref="TimeRangeS"/> and
    /// <see cref="TimeStddvS"/> are taken over.
    /// </summary>
    public int Timed { get; init; }

    /// <summary>
    /// mmtests' vmscale <c>time_range</c>: over the <see cref="Timed"/> tasks, the longest elapsed
    /// time (start to exit) less the shortest. 0 with fewer than two.
    /// </summary>
    public double TimeRangeS { get; init; }

    /// <summary>
    /// mmtests' vmscale <c>time_stddv</c>: the sample standard deviation (n - 1, as mmtests'
    /// <c>calc_stddev</c>) of the same tasks' elapsed times. 0 with fewer than two.
    /// </summary>
    public double TimeStddvS { get; init; }

    /// <summary>The exit times of the tasks that exited, and the spread of the started ones' elapsed times.</summary>
    public static TaskExitStats Of(IEnumerable<Kernel.Sched.SimTask> tasks)
    {
        long[] at = tasks.Where(t => t.ExitedAt >= 0).Select(t => t.ExitedAt).Order().ToArray();
        if (at.Length == 0)
        {
            return new TaskExitStats();
        }
        const double ns = 1e9;
        int mid = at.Length / 2;
        double median = at.Length % 2 == 1 ? at[mid] / ns : (at[mid - 1] + at[mid]) / 2.0 / ns;
        double[] times = tasks.Where(t => t.ExitedAt >= 0 && t.StartedAt >= 0).Select(t => (t.ExitedAt - t.StartedAt) / ns).ToArray();
        double range = 0, stddev = 0;
        if (times.Length >= 2)
        {
            range = times.Max() - times.Min();
            stddev = SeedStats.SampleStdDev(times);
        }
        return new TaskExitStats { Exited = at.Length, FirstS = at[0] / ns, MedianS = median, LastS = at[^1] / ns, Timed = times.Length, TimeRangeS = range, TimeStddvS = stddev };
    }
}

/// <summary>One task of the workload started with the run: its elapsed time (start to exit; 0 if it did not exit), user and system time (ru_utime, ru_stime) and time spent waiting to run, in simulated seconds, and its moves by load balancing.</summary>
public sealed record TaskTimes
{
    public required string Comm { get; init; }
    public required int Pid { get; init; }
    public required double StartS { get; init; }
    public required double ElapsedS { get; init; }
    public required double UserS { get; init; }
    public required double SystemS { get; init; }

    /// <summary>Time the task was runnable but waiting on a run queue (schedstat's run_delay), simulated seconds.</summary>
    public required double RunDelayS { get; init; }

    /// <summary>How many times a load balance moved the task to another CPU.</summary>
    public required long Migrations { get; init; }

    /// <summary>The tasks started with the run, in start order (then pid).</summary>
    public static IReadOnlyList<TaskTimes> Of(IEnumerable<Kernel.Sched.SimTask> tasks)
    {
        const double ns = 1e9;
        return tasks.Where(t => t.StartedAt >= 0).OrderBy(t => t.StartedAt).ThenBy(t => t.Pid)
            .Select(t => new TaskTimes
            {
                Comm = t.Comm,
                Pid = t.Pid,
                StartS = t.StartedAt / ns,
                ElapsedS = t.ExitedAt >= 0 ? (t.ExitedAt - t.StartedAt) / ns : 0,
                UserS = t.UserNs / ns,
                SystemS = t.SysNs / ns,
                RunDelayS = t.RunDelayNs / ns,
                Migrations = t.Migrations,
            }).ToArray();
    }
}

/// <summary>The zone counters' per-CPU differentials over a run (mm/vmstat.c): folds, their time, reads of folded lines, and kswapd's pressure share.</summary>
public sealed record ZoneCounterStats
{
    public long Folds { get; init; }
    public double FoldTimeS { get; init; }
    public double ReadS { get; init; }
    /// <summary>Share of the run's node-time (elapsed x nodes) during which a node's kswapd was awake, its zones at the pressure threshold (those that have a drift mark; a zone without one keeps its normal threshold throughout).</summary>
    public double PressureShare { get; init; }
}

/// <summary>truncate_inode_pages over a run: the pages it freed, when it began, and its system time.</summary>
public sealed record TruncateStats
{
    public long Pages { get; init; }
    public double StartS { get; init; }
    public double SystemS { get; init; }
}

/// <summary>
/// mm/workingset.c over a run: workingset_eviction calls (pages reclaim took out of the page cache
/// leaving a shadow entry), workingset_activation calls, the time their inactive_age increments
/// took (locked add and line transfer, inside tree_lock for evictions), and list_lru_add and
/// list_lru_del calls on workingset_shadow_nodes.
/// </summary>
public sealed record WorkingsetStats
{
    public long Evictions { get; init; }
    public long Activations { get; init; }
    public double InactiveAgeS { get; init; }
    public long ShadowNodesAdded { get; init; }
    public long ShadowNodesDeleted { get; init; }
}

/// <summary>Contention of one class of spinlock over a run.</summary>
public sealed record LockStats
{
    public long Acquisitions { get; init; }
    public long Contended { get; init; }
    public double SpinS { get; init; }
    public double HoldS { get; init; }
    /// <summary>Time in the acquisitions themselves, waits aside: the locked instruction and, for a free lock, its word's line from the last holder. With <see cref="SpinS"/>, what a profile counts in _raw_spin_lock.</summary>
    public double AcquireS { get; init; }
    /// <summary>Most holds booked on one lock at once (holders and waiters).</summary>
    public int MaxQueued { get; init; }
    /// <summary>Part of <see cref="HoldS"/>: holders taking the lock word's own cache line back from waiters to write data that shares it (the LRU list heads beside <c>lru_lock</c>, in use only without memory cgroups: 0 with <c>--memcg on</c>, the default).</summary>
    public double LineStealS { get; init; }
}

/// <summary>The "safety" object of a run's JSON.</summary>
public sealed record SafetyReport
{
    public long Violations { get; init; }
    public long LostWrite { get; init; }
    public long StaleAccessAfterFree { get; init; }
    public long WriteAfterProtect { get; init; }
    public Safety.Violation? First { get; init; }
    /// <summary>The run was ended at the first violation (--stop-on-violation).</summary>
    public bool Stopped { get; init; }
    /// <summary>The violation that ended the run (with --stop-on-violation KIND, the first of that kind).</summary>
    public Safety.Violation? StoppedBy { get; init; }
}
