using Shootdown.Engine;
using Shootdown.Hardware;
using Shootdown.Kernel.Arch.X86;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;
using Shootdown.Policies;
using Shootdown.Workloads;

namespace Shootdown;

/// <summary>The simulation reached a state the model cannot continue from (e.g. out of memory).</summary>
public sealed class SimulationException(string message) : Exception(message);

/// <summary>
/// One simulated machine running one workload under one flush policy. Holds the world (CPUs,
/// memory, mms, files, tasks), the event queue and the scheduler. Events are "CPU c finishes its
/// current step" (payload c) and task timers (payload nr_cpus + pid).
/// </summary>
public sealed class Sim
{
    private readonly EventQueue _queue;
    private readonly Exec _exec = new();
    private readonly List<SimTask> _userTasks = [];
    private readonly LeafPool _leafPool = new();
    private int _nextPid = 1;
    private int _liveUserTasks;

    public Sim(RunConfig config)
        : this(config, null)
    {
    }

    /// <summary>A run with an explicit policy instance (tests: instrumented or mutated policies).</summary>
    public Sim(RunConfig config, FlushPolicy? policy)
    {
        Config = config;
        Costs = config.Costs;
        Rng = new Rng(config.Seed);
        int nrCpus = config.NrCpus;
        Cpus = new Cpu[nrCpus];
        for (int c = 0; c < nrCpus; c++)
        {
            Cpus[c] = new Cpu(c, c / config.CpusPerNode, Costs);
        }
        long framesPerNode = config.MemoryBytes / MachineSpec.PageSize / config.Nodes;
        Memory = new Memory(config.Nodes, framesPerNode, Memory.MinFreeKbytes(config.MemoryBytes));
        Zonelists = new int[config.Nodes][];
        for (int n = 0; n < config.Nodes; n++)
        {
            Zonelists[n] = Enumerable.Range(0, config.Nodes).Select(i => (n + i) % config.Nodes).ToArray();
        }
        VmStat = new VmStat();
        Series = new TimeSeries(config.SeriesIntervalNs);
        Policy = policy ?? PolicyRegistry.Create(config.PolicyName, config.Policy);
        Policy.Sim = this;
        Arch = new TlbFlush(this);
        Rmap = new Rmap(this);
        Vmscan = new Vmscan(this);
        PageAlloc = new PageAlloc(this);
        Swap = new Swap(this);
        Filemap = new Filemap(this);
        Mmu = new Mmu(this);
        Writeback = new PageWriteback(this);
        Mprotect = new Mprotect(this);
        if (config.OracleOn)
        {
            Oracle = new Safety.Oracle(this)
            {
                StopOnViolation = config.StopOnViolation,
                StopKind = config.StopOnKind is null ? null : Safety.Oracle.ParseKind(config.StopOnKind),
            };
        }
        _queue = new EventQueue(nrCpus * 2 + 16);
        Kswapd = new KswapdTask[config.Nodes];
        for (int n = 0; n < config.Nodes; n++)
        {
            Kswapd[n] = new KswapdTask(NextPid(), n, Cpus[n * config.CpusPerNode]);
            InitBatch(Kswapd[n]);
        }
        Workload = WorkloadRegistry.Create(config.Workload);
        TotalPages = Workload.Setup(this);
    }

    public RunConfig Config { get; }

    public CostModel Costs { get; }

    public Rng Rng { get; }

    public Cpu[] Cpus { get; }

    public Memory Memory { get; }

    /// <summary>Per node: the nodes in allocation/reclaim order (local first).</summary>
    public int[][] Zonelists { get; }

    public List<MmStruct> Mms { get; } = [];

    public List<AddressSpace> Files { get; } = [];

    public KswapdTask[] Kswapd { get; }

    public VmStat VmStat { get; }

    public TimeSeries Series { get; }

    public FlushPolicy Policy { get; }

    public Workload Workload { get; }

    public TlbFlush Arch { get; }

    public Rmap Rmap { get; }

    public Vmscan Vmscan { get; }

    public PageAlloc PageAlloc { get; }

    public Swap Swap { get; }

    public Filemap Filemap { get; }

    public Mmu Mmu { get; }

    /// <summary>Pages the workload has finished with (faulted and read).</summary>
    public long PagesDone;

    public long TotalPages { get; }

    /// <summary>Simulated time of the last event processed.</summary>
    public long Now { get; private set; }

    /// <summary>When the first kswapd woke: the start of the steady (reclaiming) phase.</summary>
    public long FirstKswapdWake { get; private set; } = -1;

    /// <summary>When the first user task exited: the end of the steady phase.</summary>
    public long FirstExit { get; private set; } = -1;

    /// <summary>When the last user task exited: the test's elapsed time.</summary>
    public long LastExit { get; private set; } = -1;

    public long EventsProcessed { get; private set; }

    /// <summary>Tracepoints; null (the default) costs one check per hook.</summary>
    public Tracer? Trace { get; set; }

    /// <summary>The coherence oracle; null when off.</summary>
    public Safety.Oracle? Oracle { get; }

    public PageWriteback Writeback { get; }

    public Mprotect Mprotect { get; }

    private bool _stop;

    /// <summary>Ends the run after the current event (--stop-on-violation).</summary>
    public void RequestStop() => _stop = true;

    public bool Stopped => _stop;

    private readonly List<SimTask> _timerTasks = [];

    /// <summary>Wakes a sleeping task at time <paramref name="t"/>.</summary>
    public void WakeAt(SimTask task, long t)
    {
        int id = _timerTasks.IndexOf(task);
        if (id < 0)
        {
            id = _timerTasks.Count;
            _timerTasks.Add(task);
        }
        _queue.Push(t, Cpus.Length + id);
    }

    public IReadOnlyList<SimTask> UserTasks => _userTasks;

    // ---- world building (used by workloads) --------------------------------------------------

    public int NextPid() => _nextPid++;

    public MmStruct CreateMm()
    {
        var mm = new MmStruct(Mms.Count, Cpus.Length, _leafPool);
        Mms.Add(mm);
        return mm;
    }

    public AddressSpace CreateFile(string name, long pages, bool syncIo = false)
    {
        var f = new AddressSpace(Files.Count, name, pages, _leafPool) { SyncIo = syncIo };
        Files.Add(f);
        return f;
    }

    /// <summary>Maps <paramref name="count"/> unevictable anonymous pages (text, stack) into mm.</summary>
    public long[] MapHotPages(MmStruct mm, int node, int count)
    {
        var vpns = new long[count];
        Zone z = Memory.Zones[node];
        for (int i = 0; i < count; i++)
        {
            int f = z.PopFree();
            Memory.Pages[f].Flags = PageFlags.Unevictable | PageFlags.Uptodate;
            long vpn = 0x400 + i;
            mm.PageTable.Set(vpn, Pte.Make(f, Pte.Present | Pte.Accessed | Pte.Write | Pte.Dirty));
            mm.FixedLow = Math.Min(mm.FixedLow, vpn);
            mm.FixedHigh = Math.Max(mm.FixedHigh, vpn + 1);
            Memory.Pages[f].MapCount = 1;
            vpns[i] = vpn;
        }
        return vpns;
    }

    /// <summary>A kernel thread that starts asleep and is woken by a timer at <paramref name="firstWake"/>.</summary>
    public void AddKernelThread(SimTask task, long firstWake)
    {
        InitBatch(task);
        WakeAt(task, firstWake);
    }

    public void AddUserTask(SimTask task, long startAt)
    {
        _userTasks.Add(task);
        _liveUserTasks++;
        InitBatch(task);
        _startTimes.Add((task, startAt));
    }

    private readonly List<(SimTask Task, long At)> _startTimes = [];

    private void InitBatch(SimTask t)
    {
        if (Policy.UsesBatch)
        {
            t.Batch = new TlbUnmapBatch(Cpus.Length, Policy.BatchPages);
        }
    }

    // ---- scheduler ---------------------------------------------------------------------------

    /// <summary>try_to_wake_up: the task becomes runnable on its CPU; an idle CPU starts at once,
    /// a busy one is asked to reschedule at the end of its current step (wakeup preemption).</summary>
    public void Wake(SimTask task, long t)
    {
        if (task.State != TaskState.Sleeping)
        {
            return;
        }
        task.State = TaskState.Runnable;
        if (task is KswapdTask && FirstKswapdWake < 0)
        {
            FirstKswapdWake = t;
        }
        Enqueue(task.HomeCpu, task, t);
    }

    private void Enqueue(Cpu cpu, SimTask task, long t)
    {
        cpu.RunQueue.Add(task);
        if (cpu.Current is null && !cpu.EventPending)
        {
            cpu.EventPending = true;
            _queue.Push(Math.Max(t, Now), cpu.Id);
        }
        else
        {
            cpu.NeedResched = true;
        }
    }

    /// <summary>Runs the simulation to the exit of the last user task.</summary>
    public void Run(Action<double>? progress = null, CancellationToken cancel = default)
    {
        foreach (var (task, at) in _startTimes)
        {
            Wake(task, at);
        }
        _startTimes.Clear();
        long nextReport = 0;
        long nextSample = 0;
        while (_liveUserTasks > 0 && _queue.TryPop(out long t, out int payload))
        {
            while (t >= nextSample)
            {
                Sample(nextSample);
                nextSample += Series.IntervalNs;
            }
            Now = t;
            EventsProcessed++;
            Writeback.CompleteDue(t);
            if (payload >= Cpus.Length)
            {
                Wake(_timerTasks[payload - Cpus.Length], t);
                continue;
            }
            RunCpu(Cpus[payload], t);
            if (_stop)
            {
                break;
            }
            if (progress is not null && EventsProcessed >= nextReport)
            {
                nextReport = EventsProcessed + 50_000;
                progress((double)PagesDone / Math.Max(1, TotalPages));
                cancel.ThrowIfCancellationRequested();
            }
        }
        if (_stop)
        {
            LastExit = Math.Max(LastExit, Now);
        }
        else if (_liveUserTasks > 0)
        {
            throw new SimulationException("deadlock: no CPU has work but user tasks have not finished");
        }
        progress?.Invoke(1.0);
    }

    /// <summary>Gauges at a bucket boundary: free pages per node and runnable tasks.</summary>
    private void Sample(long t)
    {
        int runnable = 0;
        foreach (Cpu c in Cpus)
        {
            runnable += c.RunQueue.Count + (c.Current is null ? 0 : 1);
        }
        Series.SetGauges(t, Memory.Zones, runnable);
        if (Trace is not null)
        {
            foreach (Zone z in Memory.Zones)
            {
                Trace.Counter($"free pages node {z.Node}", t, z.NrFree);
            }
            if (t >= Series.IntervalNs)
            {
                int b = (int)(t / Series.IntervalNs) - 1;
                Trace.Counter("interrupts/s", t, Series.Get(Observe.Series.Interrupts, b) * 1_000_000_000 / Series.IntervalNs);
            }
        }
    }

    private void RunCpu(Cpu cpu, long t)
    {
        cpu.EventPending = false;
        SimTask? cur = cpu.Current;
        bool switched = false;
        if (cur is not null && cpu.RunQueue.Count > 0 && (cpu.NeedResched || t - cpu.SliceStart >= Costs.SchedSliceNs))
        {
            cpu.Current = null;
            if (cur is KswapdTask && t - cpu.SliceStart >= Costs.SchedSliceNs && Config.CpusPerNode > 1)
            {
                // CFS load balancing spreads a node's 13 runnable tasks over its 12 CPUs: model it
                // by moving kswapd on to the node's next CPU when its slice ends, so it keeps
                // (almost) a whole CPU and each user task gives up a slice in turn.
                int first = cpu.Node * Config.CpusPerNode;
                Cpu next = Cpus[first + (cpu.Id - first + 1) % Config.CpusPerNode];
                cur.HomeCpu = next;
                Enqueue(next, cur, t);
            }
            else
            {
                cpu.RunQueue.Add(cur);
            }
            cur = null;
        }
        cpu.NeedResched = false;
        if (cur is null)
        {
            if (cpu.RunQueue.Count == 0)
            {
                return; // idle until woken
            }
            cur = cpu.RunQueue[0];
            cpu.RunQueue.RemoveAt(0);
            cpu.Current = cur;
            cpu.SliceStart = t;
            switched = cpu.Prev != cur;
        }
        long start = t + cpu.IrqDebtNs; // interrupt handlers ran first; already accounted as system time
        cpu.IrqDebtNs = 0;
        Exec ex = _exec;
        ex.Reset(cpu, cur, t, start);
        if (switched)
        {
            ContextSwitch(ex, cur);
        }
        cpu.Prev = cur;
        StepResult r = cur.Step(this, ex);
        long end = ex.Now;
        if (end <= t)
        {
            throw new InvalidOperationException($"{cur.Comm} made a step of no duration at {t} ns");
        }
        Trace?.Step(cpu.Id, cur.Comm, ex.What, start, end, ex.User, ex.Spin, ex.IpiWait);
        cpu.UserNs += ex.User;
        cpu.SysNs += ex.Sys;
        cpu.SpinNs += ex.Spin;
        cpu.IpiWaitNs += ex.IpiWait;
        AccountTicks(cpu, t, end);
        switch (r)
        {
            case StepResult.Sleep:
                cur.State = TaskState.Sleeping;
                cpu.Current = null;
                break;
            case StepResult.Exit:
                cur.State = TaskState.Exited;
                cpu.Current = null;
                _liveUserTasks--;
                if (FirstExit < 0)
                {
                    FirstExit = end;
                }
                LastExit = end;
                break;
        }
        cpu.EventPending = true;
        _queue.Push(end, cpu.Id);
    }

    /// <summary>
    /// context_switch with x86 switch_mm of Linux 4.0: a kernel thread borrows the previous mm in
    /// lazy TLB mode; switching to a different mm reloads CR3 (a full flush, no PCID in 4.0), sets
    /// this CPU in the new mm's cpumask and clears it from the old one's; coming back to the lazily
    /// kept mm after leave_mm reloads CR3 too.
    /// </summary>
    private void ContextSwitch(Exec ex, SimTask next)
    {
        Cpu cpu = ex.Cpu;
        ex.Sys += Costs.ContextSwitchNs;
        MmStruct? mm = next.Mm;
        if (mm is null)
        {
            cpu.Lazy = cpu.ActiveMm >= 0; // enter_lazy_tlb
            return;
        }
        if (cpu.ActiveMm == mm.Id)
        {
            cpu.Lazy = false;
            if (!mm.CpuMask.Test(cpu.Id))
            {
                mm.CpuMask.Set(cpu.Id);
                cpu.Tlb.FlushAll();
                Trace?.TlbFlush(ex.Now, cpu.Id, next.Comm, next.Pid, -1, TlbFlushReason.FlushOnTaskSwitch);
            }
            return;
        }
        if (cpu.ActiveMm >= 0)
        {
            Mms[cpu.ActiveMm].CpuMask.Clear(cpu.Id);
        }
        mm.CpuMask.Set(cpu.Id);
        cpu.ActiveMm = mm.Id;
        cpu.Lazy = false;
        cpu.Tlb.FlushAll();
        Trace?.TlbFlush(ex.Now, cpu.Id, next.Comm, next.Pid, -1, TlbFlushReason.FlushOnTaskSwitch);
    }

    /// <summary>Local timer interrupts at HZ on a busy CPU (NOHZ idle: none when idle).</summary>
    private void AccountTicks(Cpu cpu, long from, long to)
    {
        long ticks = to / Costs.TickNs - from / Costs.TickNs;
        if (ticks > 0)
        {
            cpu.TimerTicks += ticks;
            Series.Add(Observe.Series.Interrupts, to, ticks);
            Series.Add(Observe.Series.TimerTicks, to, ticks);
        }
    }
}
