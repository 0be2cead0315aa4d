using Shootdown.Engine;
using Shootdown.Hardware;
using Shootdown.Kernel;
using Shootdown.Kernel.Arch;
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
/// One simulated machine running one workload under one flush policy: the place where the
/// machine is built, once, with each subsystem given what it depends on. It holds the world
/// (CPUs, memory, mms, files) and the subsystems; it runs nothing itself — the engine orders
/// events, the scheduler runs the tasks' processes, the kernel paths live in Kernel/.
/// </summary>
public sealed class Sim
{
    private readonly LeafPool _leafPool = new();
    private int _nextPid = 1;
    private Tracer? _trace;

    public Sim(RunConfig config)
        : this(config, null)
    {
    }

    /// <summary>A run with an explicit policy instance (tests: instrumented or mutated policies).</summary>
    public Sim(RunConfig config, FlushPolicy? policy)
    {
        Config = config;
        config.Costs.Validate();
        MachineCosts = config.Costs.AtCoreClock();
        CostModel Costs = MachineCosts;
        Rng = new Rng(config.Seed);
        int nrCpus = config.NrCpus;
        Cpus = new Cpu[nrCpus];
        for (int c = 0; c < nrCpus; c++)
        {
            Cpus[c] = new Cpu(c, c / config.CpusPerNode, Costs);
        }
        NumaDistance distance = config.NumaDistance ?? NumaDistance.Uniform(config.Nodes);
        Lines = new CacheLines(config.Nodes, config.CpusPerNode, distance, Costs);
        Exec = new Exec(Costs, Lines);
        long framesPerNode = config.MemoryBytes / MachineSpec.PageSize / config.Nodes;
        // The kernel sizes its batches and watermarks for the full-size machine (Zone.SizingScale);
        // node 0's memory below 4 GiB is its ZONE_DMA32.
        Memory = new Memory(config.Nodes, framesPerNode, config.Policy.MinFreeKbytes ?? Memory.MinFreeKbytes(checked(config.MemoryBytes * config.ScaleDivisor)), config.NrCpus,
            config.ScaleDivisor, config.Dma32Bytes / MachineSpec.PageSize, config.Policy.Memcg);
        ZoneStats = new ZoneStats(Memory.Zones, nrCpus, Lines, Costs);
        Zonelists = new int[config.Nodes][];
        for (int n = 0; n < config.Nodes; n++)
        {
            // Node order (4.0 on 64-bit): the nodes in turn, each node's zones highest first.
            Zonelists[n] = Enumerable.Range(0, config.Nodes).SelectMany(i => Memory.NodeZones[(n + i) % config.Nodes].Reverse()).ToArray();
        }
        VmStat = new VmStat();
        // The headline rates (steady-phase interrupts/s, interrupts per second) come from fixed
        // 100 ms buckets whatever --interval the user's time series has.
        Headline = new TimeSeries(HeadlineIntervalNs);
        Series = config.SeriesIntervalNs == HeadlineIntervalNs ? Headline : new TimeSeries(config.SeriesIntervalNs) { Mirror = Headline };
        FaultsFine = new TimeSeries(FaultsFineIntervalNs);
        Engine = new Engine.Engine(nrCpus * 2 + 16);
        Engine.Advancing += SampleUpTo;

        // Hardware-facing layers first, then generic mm, then the scheduler that runs it all.
        X86 = new X86TlbFlush(Cpus, Mms, Costs, VmStat, Series, config.Policy.FlushCeiling, distance) { Lines = Lines };
        Arch = X86;
        Policy = policy ?? PolicyRegistry.Create(config.PolicyName, config.Policy);
        Policy.Bind(Arch, Cpus, VmStat);
        Rmap = new Rmap(this);
        Vmscan = new Vmscan(this);
        PageAlloc = new PageAlloc(this);
        Swap = new Swap(this);
        Filemap = new Filemap(this);
        Readahead = new Readahead(this);
        Fault = new Fault(this);
        Mmap = new Mmap(this);
        Exit = new Exit(this);
        Mmu = new Mmu(this);
        Writeback = new PageWriteback(this);
        Mprotect = new Mprotect(this);
        Migrate = new Migrate(this);
        Truncate = new Truncate(this);
        Workingset = new Workingset(this, config.Nodes);
        NumaBalancing = new NumaBalancing(this);
        Sched = new Scheduler(Engine, Cpus, Costs, Arch, Exec, Series, t => t.Run(this), Exit.DoExit, config.Sched with { BalanceSeed = config.Seed ^ 0x6C6F61645F62616CUL });
        X86.ResolveArrivalsWith(Engine, Sched.ChargeLateIpiWait);
        X86.CostsOn = Sched.CostsOn;
        ZoneStats.Cpus = Cpus;
        if (config.OracleOn)
        {
            Oracle = new Safety.Oracle(this)
            {
                StopOnViolation = config.StopOnViolation,
                StopKind = config.StopOnKind is null ? null : Safety.Oracle.ParseKind(config.StopOnKind),
            };
        }
        Kswapd = new KswapdTask[config.Nodes];
        NodeCpus = new int[config.Nodes][];
        for (int n = 0; n < config.Nodes; n++)
        {
            int[] nodeCpus = NodeCpus[n] = Enumerable.Range(n * config.CpusPerNode, config.CpusPerNode).ToArray();
            int first = nodeCpus[config.Sched.KswapdFirstCpuOffset % nodeCpus.Length];
            Kswapd[n] = new KswapdTask(NextPid(), n, Cpus[first], nodeCpus);
            InitBatch(Kswapd[n]);
        }
        Workload = WorkloadRegistry.Create(config.Workload);
        TotalPages = Workload.Setup(this);
    }

    public RunConfig Config { get; }

    /// <summary>The machine's constants at its core clock: a thread's whose hyperthread sibling is busy.</summary>
    public CostModel MachineCosts { get; }

    /// <summary>
    /// The constants of the step being simulated — its CPU's, which depend on whether another
    /// thread of its core is busy (<see cref="Scheduler.CostsOn"/>); between steps the machine's
    /// default. Kernel paths read every cost through this.
    /// </summary>
    public CostModel Costs => Sched is null ? MachineCosts : Sched.StepCosts;

    public Rng Rng { get; }

    public Cpu[] Cpus { get; }

    /// <summary>The ids of each node's CPUs (the allowed set of its kswapd and of tasks not bound to one CPU; never modified).</summary>
    public int[][] NodeCpus { get; }

    public Memory Memory { get; }

    /// <summary>Per node: the nodes in allocation/reclaim order (local first).</summary>
    public int[][] Zonelists { get; }

    public List<MmStruct> Mms { get; } = [];

    public List<AddressSpace> Files { get; } = [];

    public KswapdTask[] Kswapd { get; }

    public VmStat VmStat { get; }

    /// <summary>mm/vmstat.c's per-CPU differentials of the zone counters and what their folds cost.</summary>
    public ZoneStats ZoneStats { get; }

    public TimeSeries Series { get; }

    /// <summary>Width of the buckets behind the headline rates, independent of the time-series interval.</summary>
    public const long HeadlineIntervalNs = 100_000_000;

    /// <summary>The counts behind the result's rates, in 100 ms buckets (the same object as <see cref="Series"/> at the default interval).</summary>
    public TimeSeries Headline { get; }

    /// <summary>Width of <see cref="FaultsFine"/>'s buckets.</summary>
    public const long FaultsFineIntervalNs = 1_000_000;

    /// <summary>
    /// The workload's page faults alone, in 1 ms buckets: the steady phase's progress
    /// (<see cref="Reports.SteadyFaultStats"/>) is cut into a hundred intervals, finer than the
    /// headline's 100 ms in a short scaled run.
    /// </summary>
    public TimeSeries FaultsFine { get; }

    public FlushPolicy Policy { get; }

    public Workload Workload { get; }

    /// <summary>The discrete-event core.</summary>
    public Engine.Engine Engine { get; }

    /// <summary>The step accumulator every step of every CPU uses (one step runs at a time).</summary>
    public Exec Exec { get; }

    /// <summary>The cache-line model: where struct pages, page tables and lock words are cached.</summary>
    public CacheLines Lines { get; }

    public Scheduler Sched { get; }

    /// <summary>The arch TLB layer as generic code sees it.</summary>
    public IArchTlb Arch { get; }

    /// <summary>The x86 implementation of <see cref="Arch"/>.</summary>
    public X86TlbFlush X86 { get; }

    public Rmap Rmap { get; }

    public Vmscan Vmscan { get; }

    public PageAlloc PageAlloc { get; }

    public Swap Swap { get; }

    public Filemap Filemap { get; }

    /// <summary>mm/readahead.c: read(2)'s windows.</summary>
    public Readahead Readahead { get; }

    public Fault Fault { get; }

    public Mmap Mmap { get; }

    public Exit Exit { get; }

    public Mmu Mmu { get; }

    public PageWriteback Writeback { get; }

    public Mprotect Mprotect { get; }

    public Migrate Migrate { get; }

    /// <summary>mm/truncate.c: a removed file's page cache dropped.</summary>
    public Truncate Truncate { get; }

    /// <summary>mm/workingset.c: inactive_age and the shadow-node list.</summary>
    public Workingset Workingset { get; }

    /// <summary>kernel/sched/fair.c's NUMA balancing scanner (task_numa_work), for tasks that opt in.</summary>
    public NumaBalancing NumaBalancing { get; }

    /// <summary>The readers' throughputs so far, each its pages in KiB over its own run time, summed (vm-scalability's figure).</summary>
    public double ReaderThroughputKbps { get; private set; }

    /// <summary>A reader read <paramref name="pages"/> between <paramref name="startNs"/> and <paramref name="endNs"/>, and reports its KiB/s as usemem and dd do.</summary>
    public void ReaderDone(long pages, long startNs, long endNs)
    {
        if (endNs > startNs)
        {
            ReaderThroughputKbps += pages * (MachineSpec.PageSize / 1024.0) / ((endNs - startNs) / 1e9);
        }
    }

    /// <summary>Pages the workload has finished with (faulted and read).</summary>
    public long PagesDone;

    public long TotalPages { get; }

    /// <summary>Simulated time of the last event processed.</summary>
    public long Now => Engine.Now;

    /// <summary>When kswapd was first woken: the start of the steady (reclaiming) phase.</summary>
    public long FirstKswapdWake => Vmscan.FirstKswapdWake;

    /// <summary>When the first user task exited: the end of the steady phase.</summary>
    public long FirstExit => Sched.FirstExit;

    /// <summary>When the last user task exited (or the run was stopped): the test's elapsed time.</summary>
    public long LastExit => Stopped ? Math.Max(Sched.LastExit, Now) : Sched.LastExit;

    public long EventsProcessed => Engine.EventsProcessed;

    /// <summary>Tracepoints; null (the default) costs one check per hook.</summary>
    public Tracer? Trace
    {
        get => _trace;
        set
        {
            _trace = value;
            X86.Trace = value;
            Sched.Trace = value;
            Policy.Trace = value;
        }
    }

    /// <summary>The coherence oracle; null when off.</summary>
    public Safety.Oracle? Oracle { get; }

    /// <summary>Ends the run after the current event (--stop-on-violation).</summary>
    public void RequestStop() => Engine.Stop();

    public bool Stopped => Engine.Stopped;

    public IReadOnlyList<SimTask> UserTasks => Sched.UserTasks;

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
        Zone z = Memory.TopZone(node);
        for (int i = 0; i < count; i++)
        {
            int f = Memory.AllocBootPage(z);
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
        Sched.WakeAt(task, firstWake);
    }

    /// <summary>A user task that starts at <paramref name="startAt"/>; the run lasts until every user task exits.</summary>
    public void AddUserTask(SimTask task, long startAt)
    {
        InitBatch(task);
        Sched.AddUserTask(task, startAt);
    }

    /// <summary>A user task that starts asleep, for another to wake (<see cref="Scheduler.Wake"/>); the run lasts until it exits too.</summary>
    public void AddSleepingUserTask(SimTask task)
    {
        InitBatch(task);
        Sched.AddUserTask(task, startAt: -1);
    }

    private void InitBatch(SimTask t)
    {
        if (Policy.UsesBatch)
        {
            t.Batch = new TlbUnmapBatch(Cpus.Length, Policy.BatchPages);
        }
    }

    // ---- running -------------------------------------------------------------------------------

    /// <summary>Runs the simulation to the exit of the last user task (or a requested stop).</summary>
    public void Run(Action<double>? progress = null, CancellationToken cancel = default)
    {
        Sched.Start();
        long nextReport = 0;
        bool drained = !Engine.Run(() => Sched.LiveUserTasks > 0, () =>
        {
            if (progress is not null && Engine.EventsProcessed >= nextReport)
            {
                nextReport = Engine.EventsProcessed + 50_000;
                progress((double)PagesDone / Math.Max(1, TotalPages));
                cancel.ThrowIfCancellationRequested();
            }
        });
        if (drained && !Stopped)
        {
            throw new SimulationException("deadlock: no CPU has work but user tasks have not finished");
        }
        progress?.Invoke(1.0);
    }

    private long _nextSample;

    /// <summary>Time-series gauges at each bucket boundary the clock passes: free pages per node and runnable tasks.</summary>
    private long _nextHeadlineTouch;

    private void SampleUpTo(long t)
    {
        while (t >= _nextSample)
        {
            Sample(_nextSample);
            _nextSample += Series.IntervalNs;
        }
        // The headline buckets reach as far as they would if they were the sampled series.
        while (!ReferenceEquals(Series, Headline) && t >= _nextHeadlineTouch)
        {
            Headline.Add(Observe.Series.Interrupts, _nextHeadlineTouch, 0);
            _nextHeadlineTouch += HeadlineIntervalNs;
        }
    }

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
            for (int n = 0; n < Memory.NodeZones.Length; n++)
            {
                long free = 0;
                foreach (int zi in Memory.NodeZones[n])
                {
                    free += Memory.Zones[zi].NrFree;
                }
                Trace.Counter($"free pages node {n}", t, free);
            }
            if (t >= Series.IntervalNs)
            {
                int b = (int)(t / Series.IntervalNs) - 1;
                Trace.Counter("interrupts/s", t, Series.Get(Observe.Series.Interrupts, b) * 1_000_000_000 / Series.IntervalNs);
            }
        }
    }
}
