using Shootdown.Engine;
using Shootdown.Hardware;
using Shootdown.Kernel.Arch;
using Shootdown.Observe;

namespace Shootdown.Kernel.Sched;

/// <summary>Scheduler choices users may vary; each defaults to what the model of CFS does.</summary>
public sealed record SchedParams
{
    /// <summary>
    /// CFS's load balancing: each CPU balances its socket's domain at its own periodic timer
    /// (<see cref="Scheduler.OnBalance"/>: every <see cref="Scheduler.BusyBalanceIntervalNs"/> on a
    /// busy CPU, the interval doubling while the domain is balanced), pulling a waiting task from
    /// the busiest CPU (or, after four failed balances in a row, having a running one pushed over);
    /// a CPU going idle pulls one at once if its idle periods average at least
    /// <see cref="Scheduler.MigrationCostNs"/>; a task woken on a busy CPU goes to an idle allowed
    /// one (select_idle_sibling). Off: tasks stay where they are placed.
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
        engine.On(EventKind.CpuStepEnd, OnCpuStepEnd);
        engine.On(EventKind.Timer, (t, id) => Wake(_timerTasks[id], t));
        engine.On(EventKind.Balance, OnBalance);
        _balanceArmed = new bool[cpus.Length];
    }

    // Whether each CPU's balance timer is set: the timers stop while every CPU is idle (so that a
    // simulation with nothing left to run ends, or reports its deadlock) and start again at the
    // next wakeup.
    private readonly bool[] _balanceArmed;
    private int _armed;
    private bool _phased;

    // The CPUs of each CPU's scheduler domain below the NUMA level (its socket: MC).
    private readonly int[][] _domain;

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

    /// <summary>
    /// A CPU's periodic load balance of its domain (rebalance_domains, load_balance), at a tick: a
    /// CPU that runs at most one task finds the domain's busiest CPU (the one with the most
    /// runnable tasks, two or more) and takes a task that waits there and may run here
    /// (detach_tasks). If only the running task may come, the balance fails; the failure that
    /// brings nr_balance_failed over cache_nice_tries + 2 has that CPU's stopper push the running
    /// task here (need_active_balance, <see cref="ActiveBalanceAfter"/>). The interval goes back to
    /// its minimum after an imbalance and doubles, up to twice that, when the domain was balanced
    /// (or an active balance was started); a busy CPU waits busy_factor times it, an idle one
    /// (whose balance the nohz idle balancer runs at a busy CPU's tick) not.
    /// </summary>
    internal void OnBalance(long t, int id)
    {
        Cpu cpu = _cpus[id];
        if (cpu.Current is not null && t < cpu.StepEnd)
        {
            // The tick, and the SCHED_SOFTIRQ that balances after it, is taken when the CPU's
            // interrupts are on: after the interrupts-off section it arrived in, if any.
            long on = cpu.IrqEnabledAt(t);
            if (on > t)
            {
                _engine.Schedule(on, EventKind.Balance, id);
                return;
            }
        }
        long min = MinBalanceIntervalNs(_domain[id].Length);
        if (NrRunning(cpu) <= 1)
        {
            Cpu? busiest = Busiest(cpu);
            if (busiest is null)
            {
                cpu.NrBalanceFailed = 0;
                cpu.BalanceIntervalNs = Math.Min(2 * cpu.BalanceIntervalNs, 2 * min);
            }
            else if (PullWaiting(busiest, cpu, t))
            {
                cpu.NrBalanceFailed = 0;
                cpu.BalanceIntervalNs = min;
            }
            else
            {
                cpu.NrBalanceFailed++;
                SimTask? running = busiest.Current;
                if (cpu.NrBalanceFailed > ActiveBalanceAfter - 1 && running is not null && Allowed(running, id))
                {
                    busiest.PushTo = id;
                    cpu.NrBalanceFailed = CacheNiceTries + 1;
                    cpu.BalanceIntervalNs = Math.Min(2 * cpu.BalanceIntervalNs, 2 * min);
                }
                else
                {
                    cpu.BalanceIntervalNs = min;
                }
            }
        }
        bool anyBusy = false;
        foreach (Cpu c in _cpus)
        {
            if (c.EventPending || NrRunning(c) > 0)
            {
                anyBusy = true;
                break;
            }
        }
        if (anyBusy)
        {
            ArmBalance(cpu, t);
        }
        else
        {
            _balanceArmed[id] = false;
            _armed--;
        }
    }

    private void ArmBalance(Cpu cpu, long t)
    {
        bool busy = !(cpu.IdleSince >= 0 && NrRunning(cpu) == 0);
        _engine.Schedule(ToTick(t + cpu.BalanceIntervalNs * (busy ? BusyFactor : 1) + 1) + TieBreak(), EventKind.Balance, cpu.Id);
    }

    // The CPUs' ticks are aligned (no sched_skew_tick), so several CPUs may balance at one tick; in
    // 4.0 their softirqs run concurrently and which one reaches the busiest run queue first is
    // chance. The model runs them one after another, in an order drawn from the run's seed: each
    // balance is offset from its tick by under a microsecond.
    private long TieBreak() => (long)(_balanceRng.NextU64() % 1000);

    private readonly Rng _balanceRng;

    private static bool Allowed(SimTask task, int cpu) => Array.IndexOf(task.AllowedCpus, cpu) >= 0;

    /// <summary>The CPU of <paramref name="cpu"/>'s domain with the most runnable tasks, if two or more (find_busiest_group, find_busiest_queue).</summary>
    private Cpu? Busiest(Cpu cpu)
    {
        Cpu? busiest = null;
        int most = 1;
        foreach (int j in _domain[cpu.Id])
        {
            int n = NrRunning(_cpus[j]);
            if (j != cpu.Id && n > most)
            {
                most = n;
                busiest = _cpus[j];
            }
        }
        return busiest;
    }

    /// <summary>
    /// Moves a task that waits on <paramref name="from"/> and may run on <paramref name="to"/>
    /// there (detach_tasks, attach_tasks); false if none. A task that ran less than
    /// <see cref="MigrationCostNs"/> ago is cache-hot and stays, unless the balancing CPU's
    /// balances have failed more than cache_nice_tries times in a row (can_migrate_task, task_hot).
    /// </summary>
    private bool PullWaiting(Cpu from, Cpu to, long t)
    {
        foreach (SimTask w in from.RunQueue)
        {
            bool hot = t - w.LastRanAt < MigrationCostNs;
            if (Allowed(w, to.Id) && (!hot || to.NrBalanceFailed > CacheNiceTries))
            {
                from.RunQueue.Remove(w);
                Migrate(w, to, t);
                return true;
            }
        }
        return false;
    }

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

    /// <summary>The CPU the task last ran on if idle or the only one allowed; else an idle allowed CPU (select_idle_sibling), else the last one.</summary>
    private Cpu SelectTaskRq(SimTask task)
    {
        Cpu home = task.HomeCpu;
        if (!Params.Spread || task.AllowedCpus.Length == 1 || IsIdle(home))
        {
            return home;
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

    private static bool IsIdle(Cpu c) => c.Current is null && c.RunQueue.Count == 0;

    /// <summary>
    /// An idle CPU starts at once. On a busy one a woken task preempts the running one at the end
    /// of its current step (check_preempt_wakeup: a sleeper's vruntime is placed up to half the
    /// latency behind, more than the wakeup granularity); a task a balance pulls there
    /// (attach_task, its vruntime renormalised) waits for the running task's slice to end.
    /// </summary>
    private void Enqueue(Cpu cpu, SimTask task, long t, bool wakeup)
    {
        if (_armed < _cpus.Length && Params.Spread)
        {
            foreach (Cpu c in _cpus)
            {
                if (!_balanceArmed[c.Id])
                {
                    _balanceArmed[c.Id] = true;
                    _armed++;
                    if (_phased)
                    {
                        ArmBalance(c, t);
                    }
                    else
                    {
                        // The first wakeup starts the timers, each at its own point of its busy
                        // interval (drawn from the run's seed).
                        double phase = (_balanceRng.NextU64() >> 11) * (1.0 / (1UL << 53));
                        _engine.Schedule(ToTick(t + (long)(phase * c.BalanceIntervalNs * BusyFactor)) + TieBreak(), EventKind.Balance, c.Id);
                    }
                }
            }
            _phased = true;
        }
        if (NrRunning(cpu) == 1)
        {
            cpu.SharedSince = t;
        }
        cpu.IdleSince = -1;
        task.QueuedAt = t;
        cpu.RunQueue.Add(task);
        if (cpu.Current is null && !cpu.EventPending)
        {
            cpu.EventPending = true;
            _engine.Schedule(t, EventKind.CpuStepEnd, cpu.Id);
        }
        else if (wakeup)
        {
            cpu.NeedResched = true;
        }
    }

    /// <summary>
    /// active_load_balance_cpu_stop: an active balance started on <paramref name="cpu"/> runs its
    /// stopper at the running task's next preemption point, which moves that task to the CPU that
    /// asked, if this one still holds more than one. Returns whether the running task left.
    /// </summary>
    private bool ActivePush(Cpu cpu, long t)
    {
        int to = cpu.PushTo;
        cpu.PushTo = -1;
        SimTask? cur = cpu.Current;
        if (cur is null || NrRunning(cpu) < 2 || !Allowed(cur, to) || NrRunning(_cpus[to]) > 1)
        {
            return false;
        }
        cpu.Current = null;
        Migrate(cur, _cpus[to], t);
        return true;
    }

    /// <summary>
    /// idle_balance: a CPU going idle pulls a waiting task from its domain's busiest CPU at once,
    /// if its idle periods have averaged at least <see cref="MigrationCostNs"/> (else it stays
    /// idle until its periodic balance, which the nohz balancer runs).
    /// </summary>
    private bool NewidleBalance(Cpu cpu, long t)
    {
        if (!Params.Spread || cpu.AvgIdleNs < MigrationCostNs)
        {
            return false;
        }
        Cpu? busiest = Busiest(cpu);
        return busiest is not null && PullWaiting(busiest, cpu, t);
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
        ex.Reset(cpu, cur, t, start);
        if (switched)
        {
            ex.Sys += _c.ContextSwitchNs; // context_switch
            _arch.SwitchMm(ex, cur);
        }
        cpu.Prev = cur;
        cur.Body ??= new ProcessRunner(_body(cur).GetEnumerator());
        bool alive = cur.Body.MoveNext();
        if (!alive)
        {
            ex.What = "exit";
            _doExit(ex, cur);
        }
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
        cpu.SpinNs += ex.Spin;
        cpu.IpiWaitNs += ex.IpiWait;
        AccountTicks(cpu, t, end);
        if (!alive)
        {
            cur.State = TaskState.Exited;
            cur.ExitedAt = end;
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
