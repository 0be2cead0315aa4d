using Shootdown.Engine;
using Shootdown.Hardware;
using Shootdown.Kernel.Arch;
using Shootdown.Observe;

namespace Shootdown.Kernel.Sched;

/// <summary>Scheduler choices users may vary; each defaults to what the model of CFS does.</summary>
public sealed record SchedParams
{
    /// <summary>
    /// CFS's load balancing: a busy CPU balances its socket's domain at its tick
    /// (<see cref="Scheduler.OnBalance"/>: every <see cref="Scheduler.BusyBalanceIntervalNs"/>, the
    /// interval doubling while the domain is balanced), an idle one is balanced by the nohz idle
    /// balancer; a balance pulls waiting tasks from the busiest CPU (or, after four failed
    /// balances in a row, has its stopper push one over); a CPU going idle pulls at once if its
    /// idle periods average at least <see cref="Scheduler.MigrationCostNs"/>; a task woken on a
    /// busy CPU goes to an idle allowed one (select_idle_sibling). Off: tasks stay where they are
    /// placed.
    /// </summary>
    public bool Spread { get; init; } = true;

    /// <summary>Where kswapd of node n starts: the node's first CPU (its allowed set is always the node's CPUs).</summary>
    public int KswapdFirstCpuOffset { get; init; }

    /// <summary>Seed of the CPUs' periodic balance timer phases: set from the run's seed when the simulation starts.</summary>
    internal ulong BalanceSeed { get; init; }
}

/// <summary>
/// kernel/sched/core.c as far as the simulation needs it: one run queue per CPU, wakeups (with
/// wakeup preemption at the end of the running step), time slices, context switches (through the
/// arch's switch_mm / enter_lazy_tlb), the idle task (which holds the last mm lazily), timers
/// (schedule_timeout), exit, and the local timer tick on busy CPUs (NOHZ idle).
/// <para>
/// A CPU runs its current task's process one step at a time: at a <see cref="EventKind.CpuStepEnd"/>
/// event it picks the task, resets the step's <see cref="Exec"/>, advances the process to its next
/// yield, and schedules the CPU's next event at the step's end.
/// </para>
/// </summary>
public sealed class Scheduler
{
    /// <summary>System time of the tasks' steps by what the step did (its <see cref="Exec.What"/>): the breakdown results report.</summary>
    public Dictionary<string, PathTime> SystemByPath { get; } = new(StringComparer.Ordinal);

    private readonly Engine.Engine _engine;
    private readonly Cpu[] _cpus;
    private readonly CostModel _c;
    private readonly IArchTlb _arch;
    private readonly Exec _ex;
    private readonly TimeSeries _series;
    private readonly Func<SimTask, IEnumerable<Yield>> _body;
    private readonly Action<Exec, SimTask> _doExit;
    private readonly List<SimTask> _timerTasks = [];
    private readonly List<(SimTask Task, long At)> _starts = [];

    /// <param name="engine">The event core; the scheduler owns CPU-step and timer events.</param>
    /// <param name="cpus">The machine's CPUs.</param>
    /// <param name="costs">Context switch, slice and tick costs.</param>
    /// <param name="arch">switch_mm and the lazy-TLB state machine.</param>
    /// <param name="ex">The step accumulator shared by every step.</param>
    /// <param name="series">Where timer interrupts go.</param>
    /// <param name="body">A task's process (its Run method bound to the kernel).</param>
    /// <param name="doExit">do_exit: what happens when a process returns (exit_mm and exit_mmap).</param>
    /// <param name="p">Placement choices.</param>
    public Scheduler(Engine.Engine engine, Cpu[] cpus, CostModel costs, IArchTlb arch, Exec ex, TimeSeries series,
        Func<SimTask, IEnumerable<Yield>> body, Action<Exec, SimTask> doExit, SchedParams p)
    {
        _engine = engine;
        _cpus = cpus;
        _c = costs;
        _arch = arch;
        _ex = ex;
        _series = series;
        _body = body;
        _doExit = doExit;
        Params = p;
        int factor = 1 + System.Numerics.BitOperations.Log2((uint)Math.Min(cpus.Length, 8));
        LatencyNs = costs.SchedLatencyNs * factor;
        MinGranularityNs = costs.SchedMinGranularityNs * factor;
        _balanceRng = new Rng(p.BalanceSeed);
        _domain = new int[cpus.Length][];
        foreach (Cpu c in cpus)
        {
            _domain[c.Id] = cpus.Where(x => x.Node == c.Node).Select(x => x.Id).ToArray();
            c.BalanceIntervalNs = MinBalanceIntervalNs(_domain[c.Id].Length);
        }
        int threads = costs.ThreadsPerCore;
        if (threads > 1)
        {
            _core = new int[cpus.Length][];
            foreach (Cpu c in cpus)
            {
                int[] node = _domain[c.Id];
                RunConfig.CheckCores(node.Length, threads);
                int first = Array.IndexOf(node, c.Id) / threads * threads;
                _core[c.Id] = node[first..(first + threads)];
                c.SmtBalanceIntervalNs = MinBalanceIntervalNs(threads);
            }
        }
        _lone = costs.LoneThread();
        StepCosts = threads > 1 ? costs : _lone;
        foreach (Cpu c in cpus)
        {
            c.Costs = StepCosts;
        }
        engine.On(EventKind.CpuStepEnd, OnCpuStepEnd);
        engine.On(EventKind.Timer, (t, id) =>
        {
            SimTask task = _timerTasks[id];
            _waker = task.HomeCpu;
            Wake(task, t);
            _waker = null;
        });
        engine.On(EventKind.Balance, OnBalance);
        _multiNode = cpus.Select(c => c.Node).Distinct().Count() > 1;
        _nodeBusy = new int[cpus.Max(c => c.Node) + 1];
    }

    // Whether the CPUs' balance history (sd->last_balance) has been given its phases: at the
    // first wakeup, when the balancing starts.
    private bool _phased;

    // The CPU whose step (or timer interrupt) is waking tasks now; null elsewhere (the run's start).
    private Cpu? _waker;

    /// <summary>The constants of a thread with no busy sibling (the machine's own at <see cref="CostModel.SmtThroughputPct"/> 200).</summary>
    private readonly CostModel _lone;

    /// <summary>
    /// The constants of the step being simulated (what the kernel paths it runs read through
    /// <c>Sim.Costs</c>); between steps, the machine's default: its own constants with SMT, the
    /// lone thread's without.
    /// </summary>
    public CostModel StepCosts { get; private set; }

    /// <summary>CPU time (user and system) of the steps started by a thread with no busy sibling, on a machine whose lone threads run faster (<see cref="CostModel.SmtThroughputPct"/> below 200), in ns: every step on such a machine with one thread a core (hyperthreading off), none at 200.</summary>
    public long LoneNs { get; private set; }

    /// <summary>
    /// The constants <paramref name="cpu"/> runs at from <paramref name="t"/>: the machine's own
    /// (stated for a thread whose sibling is busy) while another thread of its core runs a task,
    /// has one to run, is in a step or handles interrupts; the lone thread's otherwise, and always
    /// on a machine without SMT. A step's speed is fixed at its start: a sibling that starts or
    /// stops during it does not change it (steps last microseconds to a few hundred).
    /// </summary>
    public CostModel CostsOn(Cpu cpu, long t) => Alone(cpu, t) ? _lone : _c;

    /// <summary>Whether no other thread of <paramref name="cpu"/>'s core is busy at <paramref name="t"/> (always, without SMT); see <see cref="CostsOn"/>.</summary>
    public bool Alone(Cpu cpu, long t)
    {
        if (_core is null)
        {
            return true;
        }
        foreach (int s in _core[cpu.Id])
        {
            Cpu sib = _cpus[s];
            if (sib != cpu && (sib.Current is not null || sib.RunQueue.Count > 0 || t < sib.StepEnd || t < sib.IrqBusyUntil))
            {
                return false;
            }
        }
        return true;
    }

    // sd_busy exists: the socket's domain has a parent (the NUMA level), so a busy CPU's tick also
    // kicks the idle balancer when its socket has another busy CPU (nohz_kick_needed).
    private readonly bool _multiNode;
    private readonly int[] _nodeBusy;

    // nohz.next_balance: the earliest rq->next_balance of the idle CPUs the last idle balancer saw.
    private long _nohzNextBalance;

    // When the pending kick of the idle balancer is due (NOHZ_BALANCE_KICK); -1: none.
    private long _kickAt = -1;
    private bool _inIlbPass;

    // The CPUs of each CPU's scheduler domain below the NUMA level (its socket: MC).
    private readonly int[][] _domain;

    // The CPUs of each CPU's core, its SMT domain (the hyperthreads, consecutive ids), on a machine
    // with more than one thread per core; null without SMT, where the socket's domain is the lowest
    // and each of its groups one CPU.
    private readonly int[][]? _core;

    /// <summary>
    /// The levels of sched_domain the model balances, bottom up: SMT (a core's threads; on machines
    /// with hyperthreads) and MC (the socket). 4.0's sd_init gives each its own balance interval
    /// (the domain's weight in ms), imbalance_pct and cache_nice_tries; the NUMA level above is not
    /// balanced (README, "Known gaps").
    /// </summary>
    internal enum Level
    {
        /// <summary>The hyperthreads of one core (SD_SHARE_CPUCAPACITY): imbalance_pct 110, cache_nice_tries 0.</summary>
        Smt,

        /// <summary>The socket (SD_SHARE_PKG_RESOURCES): imbalance_pct 117, cache_nice_tries 1; its groups are cores.</summary>
        Mc,
    }

    /// <summary>sd->imbalance_pct of the SMT domain (sd_init, SD_SHARE_CPUCAPACITY).</summary>
    public const int SmtImbalancePct = 110;

    /// <summary>sd->cache_nice_tries of the SMT domain (sd_init's default, 0).</summary>
    public const int SmtCacheNiceTries = 0;

    private static int Pct(Level l) => l == Level.Smt ? SmtImbalancePct : ImbalancePct;

    private static int NiceTries(Level l) => l == Level.Smt ? SmtCacheNiceTries : CacheNiceTries;

    private int[] Span(Cpu cpu, Level l) => l == Level.Smt ? _core![cpu.Id] : _domain[cpu.Id];

    private static ref long LastBalance(Cpu c, Level l) => ref (l == Level.Smt ? ref c.SmtLastBalanceAt : ref c.LastBalanceAt);

    private static ref long BalanceInterval(Cpu c, Level l) => ref (l == Level.Smt ? ref c.SmtBalanceIntervalNs : ref c.BalanceIntervalNs);

    private static ref int NrBalanceFailed(Cpu c, Level l) => ref (l == Level.Smt ? ref c.SmtNrBalanceFailed : ref c.NrBalanceFailed);

    // The levels a CPU balances, bottom up.
    private Level[] Levels => _core is null ? McOnly : SmtAndMc;

    private static readonly Level[] McOnly = [Level.Mc];
    private static readonly Level[] SmtAndMc = [Level.Smt, Level.Mc];

    // Whether two CPUs are one core's threads.
    private bool Siblings(int a, int b) => _core is not null && Array.IndexOf(_core[a], b) >= 0;

    public SchedParams Params { get; }


    /// <summary>sd->busy_factor of Linux 4.0's sd_init: a busy CPU balances a domain 32 times less often than an idle one.</summary>
    public const int BusyFactor = 32;

    /// <summary>sd->cache_nice_tries of the MC domain (sd_init, SD_SHARE_PKG_RESOURCES).</summary>
    public const int CacheNiceTries = 1;

    /// <summary>
    /// The failed balance, counted from the first that finds a CPU overloaded, that moves a running
    /// task when no waiting one may go: nr_balance_failed must exceed cache_nice_tries + 2, so the
    /// fourth in a row (need_active_balance).
    /// </summary>
    public const int ActiveBalanceAfter = CacheNiceTries + 3;

    /// <summary>sysctl_sched_migration_cost, 0.5 ms: a CPU whose idle periods average less does not balance as it goes idle (idle_balance).</summary>
    public const long MigrationCostNs = 500_000;

    /// <summary>sysctl_sched_latency as 4.0 scales it at boot: <see cref="CostModel.SchedLatencyNs"/> x (1 + ilog2(min(CPUs, 8))), 24 ms on 8 or more CPUs.</summary>
    public long LatencyNs { get; }

    /// <summary>sysctl_sched_min_granularity as scaled at boot, 3 ms on 8 or more CPUs.</summary>
    public long MinGranularityNs { get; }

    /// <summary>
    /// sched_slice of one of <paramref name="nrRunning"/> equal tasks on a CPU: the period
    /// (__sched_period: the latency, or the granularity per task beyond latency / granularity
    /// tasks) shared equally — 12 ms each for two tasks on 8 or more CPUs.
    /// </summary>
    public long SliceNs(int nrRunning)
    {
        long n = Math.Max(1, nrRunning);
        long period = n > LatencyNs / MinGranularityNs ? n * MinGranularityNs : LatencyNs;
        return period / n;
    }

    /// <summary>
    /// When the task running on <paramref name="cpu"/> is preempted for a waiting one: 4.0 checks
    /// the slice only in the tick (check_preempt_tick, when the CPU has more than one runnable
    /// task; no high-resolution tick), so at the first tick at which the task has run longer than
    /// its slice since it was picked and the CPU has had company.
    /// </summary>
    public long SliceEnd(Cpu cpu)
    {
        long tick = _c.TickNs;
        long ideal = cpu.SliceStart + SliceNs(1 + cpu.RunQueue.Count);
        long afterSlice = (ideal / tick + 1) * tick;
        long shared = (cpu.SharedSince + tick - 1) / tick * tick;
        return Math.Max(afterSlice, shared);
    }

    private static int NrRunning(Cpu c) => (c.Current is null ? 0 : 1) + c.RunQueue.Count;

    // The first tick at or after t: the CPUs' local timers are aligned (no sched_skew_tick). A run
    // at 1/N keeps the kernel's periods (slices, the tick, balance intervals; README, "What moved:
    // the scheduler as 4.0's CFS").
    private long ToTick(long t) => (t + _c.TickNs - 1) / _c.TickNs * _c.TickNs;


    /// <summary>sd->min_interval of a domain of <paramref name="cpus"/> CPUs (sd_init: its weight in ms); sd->max_interval is twice it.</summary>
    public static long MinBalanceIntervalNs(int cpus) => (long)cpus * 1_000_000L;

    /// <summary>
    /// The interval at which each busy CPU balances the domain of <paramref name="cpus"/> CPUs at
    /// its shortest: in 4.0 rebalance_domains runs load_balance on a domain every
    /// sd->balance_interval x sd->busy_factor on a busy CPU (get_sd_balance_interval), sd_init
    /// setting min_interval to the domain's weight in milliseconds and busy_factor to 32 — n x 32
    /// ms: 256 ms on 8 CPUs, 384 ms on 12.
    /// </summary>
    public static long BusyBalanceIntervalNs(int cpus) => MinBalanceIntervalNs(cpus) * BusyFactor;

    /// <summary>enum cpu_idle_type: what the balancing CPU is doing.</summary>
    internal enum CpuIdleType
    {
        /// <summary>Idle, balanced by the nohz idle balancer (or, for itself, the idle balancer's own CPU).</summary>
        Idle,

        /// <summary>Busy, balancing at its own tick.</summary>
        NotIdle,

        /// <summary>Going idle (idle_balance).</summary>
        NewlyIdle,
    }

    /// <summary>sd->imbalance_pct of the MC domain (sd_init, SD_SHARE_PKG_RESOURCES): a busy CPU takes from one only if that one is more than 17% busier.</summary>
    public const int ImbalancePct = 117;

    /// <summary>MAX_PINNED_INTERVAL: while balances find every task bound elsewhere, sd->balance_interval may double up to 512 ms.</summary>
    public const long MaxPinnedIntervalNs = 512_000_000;

    /// <summary>sysctl_sched_nr_migrate: a balance looks at no more tasks of the busiest CPU than this (and than it holds).</summary>
    public const int NrMigrate = 32;

    // The tick (jiffy) t falls in.
    private long Jiffy(long t) => t / _c.TickNs * _c.TickNs;

    /// <summary>
    /// get_sd_balance_interval: sd->balance_interval, times busy_factor on a busy CPU, in whole
    /// ticks (msecs_to_jiffies rounds up), at least one tick and at most max_load_balance_interval
    /// (HZ x CPUs / 10 ticks: 100 ms a CPU).
    /// </summary>
    private long Interval(Cpu cpu, bool busy, Level level = Level.Mc)
    {
        long tick = _c.TickNs;
        long ns = BalanceInterval(cpu, level) * (busy ? BusyFactor : 1);
        long ticks = Math.Max(1, (ns + tick - 1) / tick);
        long maxTicks = Math.Max(1, 1_000_000_000L / tick * _cpus.Length / 10);
        return Math.Min(ticks, maxTicks) * tick;
    }

    // What the load counts on a CPU at t: its runnable tasks, or one while its last step before a
    // sleep or an exit runs (that task is still current until it calls schedule()).
    private static int Load(Cpu c, long t) => NrRunning(c) + (c.Current is null && t < c.StepEnd ? 1 : 0);

    // The CPU's tick runs: it is not in NOHZ idle.
    private static bool Ticking(Cpu c, long t) => Load(c, t) > 0;

    /// <summary>
    /// A CPU's balance event (argument: CPU id) or the kick of the nohz idle balancer (argument:
    /// the CPU count). A busy CPU balances its domain at its first tick at or after its
    /// rq->next_balance (trigger_load_balance, SCHED_SOFTIRQ, rebalance_domains), once its
    /// interrupts are on; an idle CPU's tick is stopped, and the idle balancer does its balances
    /// (<see cref="OnKick"/>).
    /// </summary>
    internal void OnBalance(long t, int id)
    {
        if (id == _cpus.Length)
        {
            OnKick(t);
            return;
        }
        Cpu cpu = _cpus[id];
        if (t != cpu.BalanceEventAt)
        {
            return; // superseded by an earlier event
        }
        cpu.BalanceEventAt = -1;
        if (!Ticking(cpu, t))
        {
            return; // idle since it was set: the idle balancer's business
        }
        if (Jiffy(t) < cpu.NextBalanceAt)
        {
            ArmBusy(cpu, t);
            return;
        }
        if (t < cpu.StepEnd)
        {
            // The tick, and the SCHED_SOFTIRQ that balances after it, is taken when the CPU's
            // interrupts are on: after the interrupts-off section it arrived in, if any.
            long on = cpu.IrqEnabledAt(t);
            if (on > t)
            {
                cpu.BalanceEventAt = on;
                _engine.Schedule(on, EventKind.Balance, id);
                return;
            }
        }
        RebalanceDomains(cpu, t, CpuIdleType.NotIdle);
        ArmBusy(cpu, t);
    }

    // Sets a busy CPU's balance event at its first tick at or after rq->next_balance, unless an
    // earlier one is pending (which sets the next when it finds itself early).
    private void ArmBusy(Cpu cpu, long t)
    {
        long tick = Math.Max(cpu.NextBalanceAt, ToTick(t));
        if (cpu.BalanceEventAt >= 0 && Jiffy(cpu.BalanceEventAt) <= tick)
        {
            return;
        }
        cpu.BalanceEventAt = Math.Max(tick + TieBreak(), _engine.Now);
        _engine.Schedule(cpu.BalanceEventAt, EventKind.Balance, cpu.Id);
    }

    /// <summary>
    /// rebalance_domains, bottom up over the CPU's domains (its core's, if the machine has
    /// hyperthreads, then its socket's): at each whose balance interval (busy or idle) has passed
    /// since sd->last_balance, load_balance, and from this tick the next interval — a busy one if
    /// the balance gave an idle CPU a task; rq->next_balance is the earliest of the domains'. A
    /// balance that another CPU of its group is to do (should_we_balance) stops the walk upward.
    /// </summary>
    private void RebalanceDomains(Cpu cpu, long t, CpuIdleType idle)
    {
        long now = Jiffy(t);
        long next = long.MaxValue;
        foreach (Level level in Levels)
        {
            long interval = Interval(cpu, idle != CpuIdleType.Idle, level);
            ref long last = ref LastBalance(cpu, level);
            bool goOn = true;
            if (now >= last + interval)
            {
                if (LoadBalance(cpu, t, idle, level, out goOn))
                {
                    idle = NrRunning(cpu) == 0 ? CpuIdleType.Idle : CpuIdleType.NotIdle;
                }
                last = now;
                interval = Interval(cpu, idle != CpuIdleType.Idle, level);
            }
            next = Math.Min(next, last + interval);
            if (!goOn)
            {
                break;
            }
        }
        cpu.NextBalanceAt = next;
    }

    // The CPUs' ticks are aligned (no sched_skew_tick), so several CPUs may balance at one tick; in
    // 4.0 their softirqs run concurrently and which one reaches the busiest run queue first is
    // chance. The model runs them one after another, in an order drawn from the run's seed: each
    // balance is offset from its tick by under a microsecond.
    private long TieBreak() => (long)(_balanceRng.NextU64() % 1000);

    private readonly Rng _balanceRng;

    private static bool Allowed(SimTask task, int cpu) => Array.IndexOf(task.AllowedCpus, cpu) >= 0;

    // The CPUs a balance has set aside because every task on them was bound elsewhere (LBF_ALL_PINNED).
    private bool[] _excluded = [];

    /// <summary>load_balance of <paramref name="cpu"/>'s socket domain (see the overload with a level).</summary>
    internal bool LoadBalance(Cpu cpu, long t, CpuIdleType idle) => LoadBalance(cpu, t, idle, Level.Mc, out _);

    /// <summary>
    /// load_balance of one of <paramref name="cpu"/>'s domains, in tasks where 4.0 weighs load
    /// averages: unless another CPU of its group is the one to balance this domain
    /// (should_we_balance: on the socket's domain of a machine with hyperthreads, the core's first
    /// idle CPU, else its first; <paramref name="goOn"/> false, the walk up stops there), find the
    /// busiest group and its busiest CPU (<see cref="FindBusiest"/>), take waiting tasks from it
    /// (<see cref="DetachTasks"/>); if every task there is bound elsewhere, look again without it;
    /// if nothing moved, count a failure (not when going idle) and at the one that brings
    /// nr_balance_failed over cache_nice_tries + 2 have that CPU's stopper push a task here
    /// (need_active_balance; unless one is pending, or the running task may not come). The
    /// interval goes back to its minimum after an imbalance and doubles — up to twice that, or up
    /// to 512 ms when tasks were pinned — when balanced or an active balance started.
    /// </summary>
    internal bool LoadBalance(Cpu cpu, long t, CpuIdleType idle, Level level, out bool goOn)
    {
        goOn = true;
        int[] dom = Span(cpu, level);
        if (_excluded.Length != _cpus.Length)
        {
            _excluded = new bool[_cpus.Length];
        }
        foreach (int j in dom)
        {
            _excluded[j] = false;
        }
        long min = MinBalanceIntervalNs(dom.Length);
        ref int failed = ref NrBalanceFailed(cpu, level);
        if (level == Level.Mc && _core is not null && idle != CpuIdleType.NewlyIdle && BalanceCpu(_core[cpu.Id], t) != cpu.Id)
        {
            // should_we_balance said no: out_balanced.
            goOn = false;
            failed = 0;
            DoubleInterval(cpu, level, min, pinned: false);
            return false;
        }
        bool pinned = false;
        while (true)
        {
            Cpu? busiest = FindBusiest(cpu, t, idle, level, out double imbalance);
            if (busiest is null)
            {
                // out_balanced (out_all_pinned when every CPU was set aside)
                failed = 0;
                DoubleInterval(cpu, level, min, pinned);
                return false;
            }
            int moved = 0;
            if (Load(busiest, t) > 1)
            {
                bool allPinned = true;
                moved = DetachTasks(busiest, cpu, t, imbalance, failed > NiceTries(level), ref allPinned);
                if (allPinned)
                {
                    pinned = true;
                    _excluded[busiest.Id] = true;
                    continue;
                }
            }
            bool active = false;
            if (moved == 0)
            {
                if (idle != CpuIdleType.NewlyIdle)
                {
                    failed++;
                }
                if (failed > NiceTries(level) + 2)
                {
                    // (A task in its last step before a sleep is still current: rq->curr.)
                    SimTask? curr = busiest.Current ?? (t < busiest.StepEnd ? busiest.Prev : null);
                    if (curr is null || !Allowed(curr, cpu.Id))
                    {
                        // out_one_pinned: the count stays.
                        DoubleInterval(cpu, level, min, pinned: true);
                        return false;
                    }
                    if (busiest.PushTo < 0)
                    {
                        busiest.PushTo = cpu.Id;
                        active = true;
                        SendReschedule(busiest, t); // stop_one_cpu_nowait wakes busiest's stopper
                    }
                    failed = NiceTries(level) + 1;
                }
            }
            else
            {
                failed = 0;
            }
            ref long interval = ref BalanceInterval(cpu, level);
            if (!active)
            {
                interval = min;
            }
            else if (interval < 2 * min)
            {
                interval *= 2;
            }
            return moved > 0;
        }
    }

    // should_we_balance's CPU for a group: its first idle CPU, else its first.
    private int BalanceCpu(int[] group, long t)
    {
        foreach (int j in group)
        {
            if (Load(_cpus[j], t) == 0)
            {
                return j;
            }
        }
        return group[0];
    }

    private static void DoubleInterval(Cpu cpu, Level level, long min, bool pinned)
    {
        ref long interval = ref BalanceInterval(cpu, level);
        if ((pinned && interval < MaxPinnedIntervalNs) || interval < 2 * min)
        {
            interval *= 2;
        }
    }

    /// <summary>
    /// find_busiest_group and find_busiest_queue over one of the CPU's domains, in runnable tasks.
    /// The domain's groups are single CPUs, or, on the socket's domain of a machine with
    /// hyperthreads, cores — a core's capacity counting as one task (4.0's sg_capacity_factor for
    /// two threads of 589 each), so a core running two is overloaded as a CPU running two is. The
    /// busiest group is one with two or more tasks (group_overloaded) holding the most, else the
    /// one holding the most, the first met from the balancing CPU's group on; none (balanced) if
    /// it holds no more than this CPU's group, or this group holds at least the domain's average,
    /// or — idle — it is not overloaded, or — busy — it holds no more than imbalance_pct of this
    /// group's tasks (117% on the socket, 110% between threads); a CPU going idle skips those tests
    /// (force_balance) against a group with no room. <paramref name="imbalance"/> is
    /// calculate_imbalance's, at least one task (fix_small_imbalance). The CPU returned is the
    /// busiest group's CPU holding the most tasks (the first in id order).
    /// </summary>
    private Cpu? FindBusiest(Cpu cpu, long t, CpuIdleType idle, Level level, out double imbalance)
    {
        imbalance = 0;
        int[] dom = Span(cpu, level);
        int width = level == Level.Mc && _core is not null ? _core[cpu.Id].Length : 1;
        int start = Array.IndexOf(dom, cpu.Id) / width * width;
        int local = 0;
        int n = 0;
        long total = 0;
        int busiestAt = -1;
        int most = 0;
        bool anyTwo = false;
        for (int k = 0; k < dom.Length; k += width)
        {
            int g = (start + k) % dom.Length; // the group's first CPU's place in the domain
            n++; // a CPU set aside still counts in the average, with no load (total_capacity)
            int sum = 0;
            for (int i = g; i < g + width; i++)
            {
                int j = dom[i];
                if (_excluded[j])
                {
                    continue;
                }
                int b = Load(_cpus[j], t);
                sum += b;
                anyTwo |= b >= 2;
            }
            total += sum;
            if (k == 0)
            {
                local = sum;
                continue;
            }
            // update_sd_pick_busiest: an overloaded group before one that is not, then strictly more load.
            bool over = sum >= 2, mostOver = most >= 2;
            if (sum > 0 && (busiestAt < 0 || (over && !mostOver) || (over == mostOver && sum > most)))
            {
                busiestAt = g;
                most = sum;
            }
        }
        if (!_multiNode && level == Level.Mc)
        {
            _overload = anyTwo;
        }
        if (busiestAt < 0)
        {
            return null;
        }
        bool force = idle == CpuIdleType.NewlyIdle && local < 1;
        if (!force)
        {
            if (local >= most || (long)local * n >= total)
            {
                return null;
            }
            if (idle == CpuIdleType.Idle ? most < 2 : 100 * most <= Pct(level) * local)
            {
                return null;
            }
        }
        double avg = (double)total / n;
        if (most > avg && local < avg)
        {
            double maxPull = most - avg;
            if (local >= 2)
            {
                maxPull = Math.Min(maxPull, most - 1); // both overloaded: load_above_capacity
            }
            imbalance = Math.Min(maxPull, avg - local);
        }
        imbalance = Math.Max(imbalance, 1);
        // find_busiest_queue: the group's CPU with the most tasks.
        Cpu? busiest = null;
        int best = 0;
        for (int i = busiestAt; i < busiestAt + width; i++)
        {
            int j = dom[i];
            int b = _excluded[j] ? 0 : Load(_cpus[j], t);
            if (busiest is null || b > best)
            {
                busiest = _cpus[j];
                best = b;
            }
        }
        return busiest;
    }

    /// <summary>
    /// detach_tasks and attach_tasks: takes tasks from the head of <paramref name="from"/>'s
    /// cfs_tasks (the most recently enqueued first) while the imbalance lasts, looking at no more
    /// than it holds; a task that may not move goes to the tail. A task may not move if it is
    /// bound elsewhere, running, or cache-hot (ran less than <see cref="MigrationCostNs"/> ago)
    /// while the domain's failures have not exceeded its cache_nice_tries
    /// (<paramref name="failedEnough"/>; can_migrate_task, task_hot). <paramref name="allPinned"/>
    /// is cleared by any task allowed here, running or not.
    /// </summary>
    private int DetachTasks(Cpu from, Cpu to, long t, double imbalance, bool failedEnough, ref bool allPinned)
    {
        List<SimTask> tasks = from.CfsTasks;
        int loopMax = Math.Min(NrMigrate, Load(from, t));
        List<SimTask> moved = _moved;
        moved.Clear();
        for (int loop = 0; loop < loopMax && tasks.Count > 0; loop++)
        {
            SimTask p = tasks[0];
            tasks.RemoveAt(0);
            if (!CanMigrate(p, from, to, t, failedEnough, ref allPinned) || 0.5 > imbalance)
            {
                tasks.Add(p);
                continue;
            }
            from.RunQueue.Remove(p);
            moved.Add(p);
            imbalance -= 1;
            if (imbalance <= 0)
            {
                break;
            }
        }
        // attach_tasks: env->tasks holds the detached tasks newest first, so the first one detached
        // is enqueued last and heads the destination's cfs_tasks.
        for (int i = moved.Count - 1; i >= 0; i--)
        {
            Migrate(moved[i], to, t);
        }
        return moved.Count;
    }

    private readonly List<SimTask> _moved = [];

    private static bool CanMigrate(SimTask p, Cpu from, Cpu to, long t, bool failedEnough, ref bool allPinned)
    {
        if (!Allowed(p, to.Id))
        {
            return false;
        }
        allPinned = false;
        if (p == from.Current)
        {
            return false;
        }
        bool hot = t - p.LastRanAt < MigrationCostNs;
        return !hot || failedEnough;
    }

    // Attaches a task that has left its CPU's run queue and cfs_tasks to another CPU.
    private void Migrate(SimTask task, Cpu to, long t)
    {
        if (task.QueuedAt >= 0)
        {
            task.RunDelayNs += Math.Max(0, t - task.QueuedAt); // its wait on the CPU it leaves (Enqueue starts a new one)
            task.QueuedAt = -1;
        }
        task.HomeCpu = to;
        task.Migrations++;
        Enqueue(to, task, t, wakeup: false);
    }

    /// <summary>
    /// nohz_kick_needed at a busy CPU's tick: some CPU is in NOHZ idle, the idle balancer's
    /// nohz.next_balance has come, and a ticking CPU holds two or more tasks or (on a machine with
    /// a NUMA level, sd_busy) shares its socket with another busy CPU. The kick is set at the first
    /// tick at which that holds as far as the run knows now; it is asked again when a CPU gains a
    /// second task, a CPU starts running on a multi-socket machine, or a CPU goes idle.
    /// </summary>
    private void MaybeKick(long t)
    {
        if (!Params.Spread || !_phased || _kickAt >= 0 || _inIlbPass || FirstNohzIdle(t) is null || !KickerExists(t))
        {
            return;
        }
        _kickAt = Math.Max(Math.Max(ToTick(t), _nohzNextBalance) + TieBreak(), _engine.Now);
        _engine.Schedule(_kickAt, EventKind.Balance, _cpus.Length);
    }

    private Cpu? FirstNohzIdle(long t)
    {
        foreach (Cpu c in _cpus)
        {
            if (!Ticking(c, t))
            {
                return c;
            }
        }
        return null;
    }

    private bool KickerExists(long t)
    {
        if (_multiNode)
        {
            Array.Clear(_nodeBusy);
            foreach (Cpu c in _cpus)
            {
                if (Ticking(c, t))
                {
                    _nodeBusy[c.Node]++;
                }
            }
        }
        foreach (Cpu c in _cpus)
        {
            int load = Load(c, t);
            if (load >= 2 || (load > 0 && _multiNode && _nodeBusy[c.Node] >= 2))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The nohz idle balancer, kicked: the first idle CPU (find_new_ilb) balances for itself
    /// (rebalance_domains, CPU_IDLE) and then — unless it took a task, which stops the walk
    /// (need_resched) — for each other idle CPU in CPU order whose rq->next_balance has come
    /// (nohz_idle_balance, 4.0's order: later kernels walk the others first). nohz.next_balance
    /// becomes the earliest next balance of the CPUs it saw.
    /// </summary>
    private void OnKick(long t)
    {
        if (t != _kickAt)
        {
            return;
        }
        _kickAt = -1;
        Cpu? ilb = FirstNohzIdle(t);
        if (ilb is null || !KickerExists(t))
        {
            return;
        }
        SendReschedule(ilb, t); // nohz_balancer_kick
        _inIlbPass = true;
        long now = Jiffy(t);
        if (_multiNode)
        {
            UpdateOverload(t);
        }
        RebalanceDomains(ilb, t, CpuIdleType.Idle);
        long next = ilb.NextBalanceAt;
        if (!Ticking(ilb, t))
        {
            foreach (Cpu c in _cpus)
            {
                if (c == ilb || Ticking(c, t))
                {
                    continue;
                }
                if (now >= c.NextBalanceAt)
                {
                    RebalanceDomains(c, t, CpuIdleType.Idle);
                }
                next = Math.Min(next, c.NextBalanceAt);
            }
        }
        ilb.NextBalanceAt = Math.Min(ilb.NextBalanceAt, next);
        _nohzNextBalance = next;
        _inIlbPass = false;
        MaybeKick(t + 1);
    }

    /// <summary>Tracepoints; null when tracing is off.</summary>
    public Tracer? Trace { get; set; }

    /// <summary>User tasks that have not exited.</summary>
    public int LiveUserTasks { get; private set; }

    /// <summary>
    /// When the first user task exited (end of the steady phase); -1 before. Exits are met in the
    /// order their last steps start, and a step that starts later can end sooner (exit_mmap's
    /// length goes with the mm), so this is the earliest <see cref="SimTask.ExitedAt"/>, not the
    /// first exit met.
    /// </summary>
    public long FirstExit => ExitBound(earliest: true);

    /// <summary>When the last user task exited (the test's elapsed time): the latest <see cref="SimTask.ExitedAt"/>; -1 before.</summary>
    public long LastExit => ExitBound(earliest: false);

    private long ExitBound(bool earliest)
    {
        long bound = -1;
        foreach (SimTask t in UserTasks)
        {
            if (t.ExitedAt >= 0 && (bound < 0 || (earliest ? t.ExitedAt < bound : t.ExitedAt > bound)))
            {
                bound = t.ExitedAt;
            }
        }
        return bound;
    }

    public List<SimTask> UserTasks { get; } = [];

    /// <summary>
    /// A user task that becomes runnable at <paramref name="startAt"/> (negative: it starts asleep
    /// and another wakes it); the run lasts until every user task exits.
    /// </summary>
    public void AddUserTask(SimTask task, long startAt)
    {
        task.IsUserTask = true;
        UserTasks.Add(task);
        LiveUserTasks++;
        if (startAt >= 0)
        {
            task.StartedAt = startAt;
            _starts.Add((task, startAt));
        }
    }

    /// <summary>Wakes the tasks added so far at their start times (called once, when the run starts).</summary>
    public void Start()
    {
        foreach (var (task, at) in _starts)
        {
            Wake(task, at);
        }
        _starts.Clear();
    }

    /// <summary>schedule_timeout: wake <paramref name="task"/> at <paramref name="t"/> (it sleeps with <see cref="Yield.Sleep"/>).</summary>
    public void WakeAt(SimTask task, long t)
    {
        if (task.TimerId < 0)
        {
            task.TimerId = _timerTasks.Count;
            _timerTasks.Add(task);
        }
        _engine.Schedule(t, EventKind.Timer, task.TimerId);
    }

    /// <summary>try_to_wake_up: a sleeping task becomes runnable on the CPU select_task_rq picks.</summary>
    public void Wake(SimTask task, long t)
    {
        if (task.State != TaskState.Sleeping)
        {
            return;
        }
        task.State = TaskState.Runnable;
        Cpu cpu = SelectTaskRq(task);
        task.HomeCpu = cpu;
        if (cpu.IdleSince >= 0)
        {
            // ttwu_do_wakeup: the idle period that ends here is a sample of rq->avg_idle.
            cpu.AvgIdleNs += (t - cpu.IdleSince - cpu.AvgIdleNs) / 8;
            cpu.AvgIdleNs = Math.Min(cpu.AvgIdleNs, 2 * MigrationCostNs);
        }
        Enqueue(cpu, task, t, wakeup: true);
    }

    /// <summary>
    /// The CPU the task last ran on if idle or the only one allowed; else an idle allowed CPU
    /// (select_idle_sibling), else the last one. On a machine with hyperthreads select_idle_sibling
    /// walks the socket's groups, cores, from the last CPU's on, for one whose threads are all idle
    /// (its first allowed CPU), and then that core's own threads for an idle one: a thread idle
    /// beside a busy sibling on another core is not taken.
    /// </summary>
    private Cpu SelectTaskRq(SimTask task)
    {
        Cpu home = task.HomeCpu;
        if (!Params.Spread || task.AllowedCpus.Length == 1 || IsIdle(home))
        {
            return home;
        }
        if (_core is not null)
        {
            return SelectIdleCore(task, home) ?? home;
        }
        foreach (int c in task.AllowedCpus)
        {
            if (IsIdle(_cpus[c]))
            {
                return _cpus[c];
            }
        }
        return home;
    }

    private Cpu? SelectIdleCore(SimTask task, Cpu home)
    {
        int[] dom = _domain[home.Id];
        int width = _core![home.Id].Length;
        int start = Array.IndexOf(dom, home.Id) / width * width;
        for (int k = width; k < dom.Length; k += width)
        {
            int g = (start + k) % dom.Length;
            int firstAllowed = -1;
            bool allIdle = true;
            for (int i = g; i < g + width && allIdle; i++)
            {
                allIdle = IsIdle(_cpus[dom[i]]);
                if (firstAllowed < 0 && Allowed(task, dom[i]))
                {
                    firstAllowed = dom[i];
                }
            }
            if (allIdle && firstAllowed >= 0)
            {
                return _cpus[firstAllowed];
            }
        }
        int[] core = _core[home.Id];
        int at = Array.IndexOf(core, home.Id);
        for (int k = 1; k < core.Length; k++)
        {
            int j = core[(at + k) % core.Length];
            if (IsIdle(_cpus[j]) && Allowed(task, j))
            {
                return _cpus[j];
            }
        }
        return null;
    }

    private static bool IsIdle(Cpu c) => c.Current is null && c.RunQueue.Count == 0;

    /// <summary>
    /// An idle CPU starts at once. On a busy one a woken task preempts the running one at the end
    /// of its current step (check_preempt_wakeup: a sleeper's vruntime is placed up to half the
    /// latency behind, more than the wakeup granularity); a task a balance pulls there
    /// (attach_task, its vruntime renormalised) waits for the running task's slice to end.
    /// </summary>
    private void Enqueue(Cpu cpu, SimTask task, long t, bool wakeup)
    {
        if (Params.Spread && !_phased)
        {
            // The first wakeup starts the balancing: each CPU's last balance is put at its own
            // point of a busy interval before now (drawn from the run's seed), standing for the
            // history of a machine that has run before the test; its next is due an idle interval
            // after that (rebalance_domains checks the busy one again once the CPU runs).
            foreach (Cpu c in _cpus)
            {
                double phase = (_balanceRng.NextU64() >> 11) * (1.0 / (1UL << 53));
                c.LastBalanceAt = ToTick(t) - Jiffy((long)(phase * Interval(c, busy: true)));
                c.NextBalanceAt = c.LastBalanceAt + Interval(c, busy: false);
                if (_core is not null)
                {
                    double smtPhase = (_balanceRng.NextU64() >> 11) * (1.0 / (1UL << 53));
                    c.SmtLastBalanceAt = ToTick(t) - Jiffy((long)(smtPhase * Interval(c, busy: true, Level.Smt)));
                    c.NextBalanceAt = Math.Min(c.NextBalanceAt, c.SmtLastBalanceAt + Interval(c, busy: false, Level.Smt));
                }
            }
            _phased = true;
        }
        bool wasIdle = !Ticking(cpu, t);
        if (NrRunning(cpu) == 1)
        {
            cpu.SharedSince = t;
        }
        cpu.IdleSince = -1;
        task.QueuedAt = t;
        cpu.RunQueue.Add(task);
        cpu.CfsTasks.Insert(0, task);
        if (cpu.Current is null && !cpu.EventPending)
        {
            cpu.EventPending = true;
            _engine.Schedule(t, EventKind.CpuStepEnd, cpu.Id);
        }
        else if (wakeup)
        {
            cpu.NeedResched = true;
            if (_waker is not null && _waker != cpu && cpu.Current is not null)
            {
                SendReschedule(cpu, t); // resched_curr on another CPU, whose current task does not poll
            }
        }
        if (Params.Spread)
        {
            ArmBusy(cpu, t);
            if (NrRunning(cpu) >= 2)
            {
                _overload = true;
            }
            if (NrRunning(cpu) >= 2 || (_multiNode && wasIdle))
            {
                MaybeKick(t);
            }
        }
    }

    /// <summary>
    /// active_load_balance_cpu_stop: an active balance started on <paramref name="cpu"/> runs its
    /// stopper at the running task's next preemption point. With the stopper current, the task
    /// that ran waits like the others, and detach_one_task moves the first task of cfs_tasks that
    /// may go to the CPU that asked (bound, or cache-hot while that CPU's failures have not
    /// exceeded cache_nice_tries, it may not) — whatever that CPU runs by then. Returns whether the
    /// task that was running left.
    /// </summary>
    private bool ActivePush(Cpu cpu, long t)
    {
        Cpu to = _cpus[cpu.PushTo];
        cpu.PushTo = -1;
        SimTask? cur = cpu.Current;
        // The lowest of the asking CPU's domains that holds this one: its failures and cache_nice_tries.
        Level level = Siblings(to.Id, cpu.Id) ? Level.Smt : Level.Mc;
        bool failedEnough = NrBalanceFailed(to, level) > NiceTries(level);
        foreach (SimTask p in cpu.CfsTasks)
        {
            if (!Allowed(p, to.Id) || (t - p.LastRanAt < MigrationCostNs && !failedEnough))
            {
                continue;
            }
            cpu.CfsTasks.Remove(p);
            if (p == cur)
            {
                cpu.Current = null;
            }
            else
            {
                cpu.RunQueue.Remove(p);
            }
            Migrate(p, to, t);
            return p == cur;
        }
        return false;
    }

    /// <summary>
    /// idle_balance: a CPU going idle balances its domains at once, bottom up (CPU_NEWLY_IDLE), if
    /// its idle periods have averaged at least <see cref="MigrationCostNs"/> and some CPU holds more
    /// than one task (rd->overload), stopping at the first that gives it a task; either way its
    /// rq->next_balance comes forward to the last periodic balance plus the idle interval of each
    /// domain it looked at (update_next_balance; without a balance, the lowest), for the nohz idle
    /// balancer.
    /// </summary>
    private bool NewidleBalance(Cpu cpu, long t)
    {
        if (!Params.Spread)
        {
            return false;
        }
        bool moved = false;
        // (idle_balance starts from a second ahead: jiffies + HZ.)
        long next = Jiffy(t) + 1_000_000_000;
        if (cpu.AvgIdleNs >= MigrationCostNs && Overloaded())
        {
            foreach (Level level in Levels)
            {
                moved = LoadBalance(cpu, t, CpuIdleType.NewlyIdle, level, out _);
                next = Math.Min(next, LastBalance(cpu, level) + Interval(cpu, busy: false, level));
                if (moved || NrRunning(cpu) > 0)
                {
                    break;
                }
            }
        }
        else
        {
            Level lowest = Levels[0];
            next = Math.Min(next, LastBalance(cpu, lowest) + Interval(cpu, busy: false, lowest));
        }
        cpu.NextBalanceAt = Math.Min(cpu.NextBalanceAt, next);
        return moved;
    }

    // rd->overload: set when a run queue reaches two tasks (add_nr_running), cleared only by a
    // balance that gathers the statistics of the root domain (update_sd_lb_stats at the top level):
    // on one socket every balance of the socket's domain; with a NUMA level, whose balances the
    // model does not run, the nohz idle balancer's passes, which in 4.0 balance it for the idle
    // CPUs once its interval has passed.
    private bool _overload;

    private bool Overloaded() => _overload;

    private void UpdateOverload(long t)
    {
        _overload = false;
        foreach (Cpu c in _cpus)
        {
            if (Load(c, t) >= 2)
            {
                _overload = true;
                return;
            }
        }
    }

    private void OnCpuStepEnd(long t, int id)
    {
        Cpu cpu = _cpus[id];
        cpu.EventPending = false;
        SimTask? cur = cpu.Current;
        bool sync = cur?.Body?.Current == Yield.Sync; // the task goes on: no preemption point
        if (cpu.PushTo >= 0 && !sync && ActivePush(cpu, t))
        {
            cur = null;
        }
        if (cur is not null && !sync && cpu.RunQueue.Count > 0 && (cpu.NeedResched || t >= SliceEnd(cpu)))
        {
            // Preempted: to the back of the run queue.
            cpu.Current = null;
            cur.QueuedAt = t;
            cpu.RunQueue.Add(cur);
            cur = null;
        }
        if (!sync)
        {
            cpu.NeedResched = false;
        }
        bool switched = false;
        if (cur is null)
        {
            if (cpu.RunQueue.Count == 0)
            {
                // The idle task: a kernel thread, so the mm that ran last stays loaded, lazily.
                // Handlers taken during the step that just ended run now, on the idle CPU.
                cpu.IrqBusyUntil = Math.Max(cpu.IrqBusyUntil, t) + cpu.IrqDebtNs;
                cpu.IrqDebtNs = 0;
                if (cpu.IdleSince < 0)
                {
                    cpu.IdleSince = t; // rq->idle_stamp
                    if (NewidleBalance(cpu, t))
                    {
                        return; // the pulled task starts at once (its enqueue scheduled this CPU's next step)
                    }
                    MaybeKick(t); // a CPU enters NOHZ idle
                }
                if (cpu.Prev is not null)
                {
                    _arch.EnterLazyTlb(cpu);
                    cpu.Prev = null;
                }
                return;
            }
            cur = cpu.RunQueue[0];
            cpu.RunQueue.RemoveAt(0);
            // A wakeup made inside another CPU's step is stamped with that step's own clock, which
            // may run ahead of this CPU's step end: such a task waited no time.
            cur.RunDelayNs += Math.Max(0, t - cur.QueuedAt);
            cur.QueuedAt = -1;
            cpu.Current = cur;
            cpu.SliceStart = t;
            switched = cpu.Prev != cur;
        }
        // Interrupt handlers ran first: those taken while idle occupy the CPU until they end, those
        // taken while a task ran delay its next step.
        long debtFrom = Math.Max(t, cpu.IrqBusyUntil);
        long start = debtFrom + cpu.IrqDebtNs;
        cpu.IrqDebtNs = 0;
        cpu.BeginStep(debtFrom, start);
        Exec ex = _ex;
        bool alone = Alone(cpu, start);
        StepCosts = cpu.Costs = alone ? _lone : _c;
        ex.Reset(cpu, cur, t, start);
        if (switched)
        {
            ex.Sys += ex.Costs.ContextSwitchNs; // context_switch
            _arch.SwitchMm(ex, cur);
        }
        cpu.Prev = cur;
        cur.Body ??= new ProcessRunner(_body(cur).GetEnumerator());
        _waker = cpu;
        bool alive = cur.Body.MoveNext();
        if (!alive)
        {
            ex.What = "exit";
            _doExit(ex, cur); // may wake the parent (the case script's wait)
        }
        _waker = null;
        StepCosts = _core is null ? _lone : _c;
        long end = ex.Now;
        // A step that stays runnable must let time pass, or the CPU would spin at one instant —
        // but for the step after a sync point that ends at a cond_resched: it finishes what the
        // step before began (reclaim's unmap, which finds nothing to do if the page's owner exited
        // meanwhile), so it cannot spin.
        bool mayTakeNoTime = sync && cur.Body.Current == Yield.Resched;
        if (end <= t && alive && !mayTakeNoTime && cur.Body.Current is Yield.Resched or Yield.Sync)
        {
            throw new InvalidOperationException($"{cur.Comm} made a step of no duration at {t} ns");
        }
        Trace?.Step(cpu.Id, cur.Comm, ex.What, start, end, ex.User, ex.Spin, ex.IpiWait);
        // The task's path object is kept while its label stays the same (step labels are
        // literals), so a step does no dictionary look-up in the common case.
        PathTime? path = cur.Path;
        if (path is null || !ReferenceEquals(cur.What, ex.What))
        {
            if (!SystemByPath.TryGetValue(ex.What, out path))
            {
                SystemByPath[ex.What] = path = new PathTime();
            }
            cur.Path = path;
        }
        path.SysNs += ex.Sys;
        path.SpinNs += ex.Spin;
        path.IpiWaitNs += ex.IpiWait;
        path.Steps++;
        cur.What = ex.What;
        cur.UserNs += ex.User;
        cur.SysNs += ex.Sys;
        cur.LastRanAt = end;
        cpu.UserNs += ex.User;
        cpu.SysNs += ex.Sys;
        if (alone && !ReferenceEquals(_lone, _c))
        {
            LoneNs += ex.User + ex.Sys;
        }
        cpu.SpinNs += ex.Spin;
        cpu.IpiWaitNs += ex.IpiWait;
        AccountTicks(cpu, t, end);
        if (!alive)
        {
            cur.State = TaskState.Exited;
            cur.ExitedAt = end;
            cpu.CfsTasks.Remove(cur);
            cur.Body.Dispose();
            cpu.Current = null;
            if (cur.IsUserTask)
            {
                LiveUserTasks--;
            }
        }
        else if (cur.Body.Current == Yield.Sleep)
        {
            cur.State = TaskState.Sleeping;
            cpu.Current = null;
            cpu.CfsTasks.Remove(cur);
        }
        cpu.StepEnd = end;
        cpu.EventPending = true;
        _engine.Schedule(end, EventKind.CpuStepEnd, cpu.Id);
        if (!alive)
        {
            // The parent's wait() returns. Only now: a task it wakes onto this CPU must find the
            // CPU's next event already scheduled, or the CPU would get a second one.
            cur.Reaped?.Invoke(end);
        }
    }

    /// <summary>
    /// Charges <paramref name="cpu"/> (and <paramref name="task"/>, whose step it was) a wait for IPI
    /// acknowledgements that its step, labelled <paramref name="what"/>, did not assume (a receiver had interrupts off): system time spent
    /// spinning in csd_lock_wait, which delays the CPU's next step.
    /// </summary>
    public void ChargeLateIpiWait(Cpu cpu, SimTask? task, string what, long ns)
    {
        if (task is not null)
        {
            task.SysNs += ns;
        }
        cpu.IrqDebtNs += ns;
        cpu.SysNs += ns;
        cpu.IpiWaitNs += ns;
        if (!SystemByPath.TryGetValue(what, out PathTime? path))
        {
            SystemByPath[what] = path = new PathTime();
        }
        path.SysNs += ns;
        path.IpiWaitNs += ns;
    }

    /// <summary>
    /// smp_send_reschedule: a rescheduling interrupt (RES) to <paramref name="cpu"/>, counted in
    /// /proc/interrupts and in the interrupt rate. 4.0 sends one where a wakeup makes another CPU's
    /// running task yield (resched_curr: set_nr_and_not_polling), where a wakeup is queued to a
    /// busy CPU of another LLC (ttwu_queue_remote), where a balance starts an active balance (the
    /// stopper's wakeup) and where a busy CPU kicks the nohz idle balancer (nohz_balancer_kick, an
    /// IPI even to an idle CPU). A wakeup of an idle CPU sends none: 4.0's idle loop polls
    /// (intel_idle's mwait_idle_with_hints sets TIF_POLLING_NRFLAG and monitors the thread flags),
    /// so set_nr_and_not_polling and set_nr_if_polling find the flag and skip the IPI. The
    /// handler's time (irq entry and exit, scheduler_ipi) is not charged: at the rates the
    /// workloads reach — hundreds per second — it is below 0.03% of one CPU, and like the kicked
    /// CPU's balancing it would only perturb the run.
    /// </summary>
    private void SendReschedule(Cpu cpu, long t)
    {
        cpu.ReschedIrqs++;
        _series.Add(Series.Interrupts, t, 1);
    }

    /// <summary>Local timer interrupts at HZ on a busy CPU (NOHZ idle: none when idle).</summary>
    private void AccountTicks(Cpu cpu, long from, long to)
    {
        long ticks = to / _c.TickNs - from / _c.TickNs;
        if (ticks > 0)
        {
            cpu.TimerTicks += ticks;
            _series.Add(Series.Interrupts, to, ticks);
            _series.Add(Series.TimerTicks, to, ticks);
        }
    }
}

/// <summary>System time of one kind of step, with the parts of it spent spinning and waiting for IPI acknowledgements.</summary>
public sealed class PathTime
{
    public long SysNs;
    public long SpinNs;
    public long IpiWaitNs;
    public long Steps;
}
