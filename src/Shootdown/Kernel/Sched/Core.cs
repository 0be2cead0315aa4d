using Shootdown.Engine;
using Shootdown.Hardware;
using Shootdown.Kernel.Arch;
using Shootdown.Observe;

namespace Shootdown.Kernel.Sched;

/// <summary>Scheduler choices users may vary; each defaults to what the model of CFS does.</summary>
public sealed record SchedParams
{
    /// <summary>
    /// CFS-like spreading: a CPU with more than one runnable task loses one of them (kswapd, the one
    /// task more than the CPUs of its node) to the first load balance of another CPU of the task's
    /// allowed set after it became so loaded: a busy CPU's periodic balance (its timer every
    /// <see cref="Scheduler.BusyBalanceIntervalNs"/>, at a phase drawn from the run's seed), an idle
    /// CPU's newly idle balance as it goes idle (when its idle periods average at least
    /// <see cref="Scheduler.MigrationCostNs"/>), or else the idle balance a busy CPU's tick kicks
    /// (nohz). A task woken on a busy CPU goes to an idle allowed one (select_idle_sibling). Off:
    /// tasks stay where they are placed.
    /// </summary>
    public bool Spread { get; init; } = true;

    /// <summary>Where kswapd of node n starts: the node's first CPU (its allowed set is always the node's CPUs).</summary>
    public int KswapdFirstCpuOffset { get; init; }

    /// <summary>Seed of the CPUs' periodic balance timer phases: set from the run's seed when the simulation starts.</summary>
    internal ulong BalanceSeed { get; init; }

    /// <summary>
    /// The run's scale divisor N (set when the simulation starts): a 1/N run lasts 1/N of the
    /// full-size machine's time, so its CPUs balance N times as often, and a task sharing a CPU
    /// meets as many balances per page read as at full size (<see cref="Scheduler.BusyBalanceIntervalNs"/>).
    /// </summary>
    internal int BalanceScale { get; init; } = 1;
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
        var rng = new Rng(p.BalanceSeed);
        _balancePhase = new double[cpus.Length];
        for (int i = 0; i < cpus.Length; i++)
        {
            _balancePhase[i] = (rng.NextU64() >> 11) * (1.0 / (1UL << 53));
        }
        engine.On(EventKind.CpuStepEnd, OnCpuStepEnd);
        engine.On(EventKind.Timer, (t, id) => Wake(_timerTasks[id], t));
    }

    public SchedParams Params { get; }

    // Each CPU's periodic balance timer, as a phase in [0, 1) of its interval (drawn from the run's seed).
    private readonly double[] _balancePhase;

    /// <summary>sd->busy_factor of Linux 4.0's sd_init: a busy CPU balances a domain 32 times less often than an idle one.</summary>
    public const int BusyFactor = 32;

    /// <summary>
    /// The balance, counted from the first that finds the CPU overloaded, that moves a running task
    /// when no waiting one may go: nr_balance_failed must exceed the MC domain's cache_nice_tries
    /// (1, sd_init) + 2, so the fourth failed balance in a row (need_active_balance).
    /// </summary>
    public const int ActiveBalanceAfter = 4;

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

    /// <summary>
    /// The interval at which an idle CPU balances the domain of <paramref name="cpus"/> CPUs:
    /// sd->balance_interval, which sd_init starts at min_interval, the domain's weight in ms (not
    /// multiplied by busy_factor), divided by the scale as <see cref="BusyBalanceIntervalNs"/> is.
    /// </summary>
    public static long IdleBalanceIntervalNs(int cpus, int scale = 1) => (long)cpus * 1_000_000L / scale;

    private static int NrRunning(Cpu c) => (c.Current is null ? 0 : 1) + c.RunQueue.Count;

    /// <summary>
    /// The interval at which each busy CPU balances the domain of <paramref name="cpus"/> CPUs that
    /// a task may use (kswapd's allowed set is its node, one socket): in 4.0 rebalance_domains
    /// runs load_balance on a domain every sd->balance_interval x sd->busy_factor on a busy CPU
    /// (get_sd_balance_interval), sd_init setting min_interval to the domain's weight in
    /// milliseconds and busy_factor to 32 — n x 32 ms: 256 ms on 8 CPUs, 384 ms on 12. A run at
    /// 1/<paramref name="scale"/> lasts that fraction of the full-size machine's time, and a pair's
    /// share of the run is what sets how unevenly the readers finish (as a random walk of the
    /// extra task, its spread over the run goes with the root of the number of balances), so the
    /// interval is divided by the scale, as the zones' batches are sized for the full-size machine.
    /// </summary>
    public static long BusyBalanceIntervalNs(int cpus, int scale = 1) => (long)cpus * BusyFactor * 1_000_000L / scale;

    /// <summary>
    /// The first balance, at or after <paramref name="since"/> (when <paramref name="cpu"/> came to
    /// hold more than one runnable task), of a CPU of <paramref name="task"/>'s allowed set other
    /// than <paramref name="cpu"/> that finds <paramref name="cpu"/> the busiest and pulls a task
    /// (load_balance, detach_tasks), and that CPU. A CPU running one task balances at its periodic
    /// timer (each CPU at its own phase of <see cref="BusyBalanceIntervalNs"/>); an idle one, if it
    /// went idle after <paramref name="since"/> and its idle periods average at least
    /// <see cref="MigrationCostNs"/>, as it went idle (idle_balance), and otherwise when the
    /// overloaded CPU's tick kicks the idle balance of the nohz CPUs, once the idle CPU's own
    /// interval (<see cref="IdleBalanceIntervalNs"/>) has passed since it went idle
    /// (nohz_kick_needed, nohz_idle_balance). A CPU that holds more than one task pulls nothing.
    /// </summary>
    internal (long At, int Cpu) NextPull(SimTask task, Cpu cpu, long since, bool running = false)
    {
        // A running task cannot be detached: the balance fails, and only the failed balance that
        // brings the domain's nr_balance_failed over cache_nice_tries + 2 (the MC domain's 1: the
        // fourth in a row) pushes it away through the CPU's stopper (need_active_balance). Newly
        // idle balances do not count failures.
        int failures = running ? ActiveBalanceAfter - 1 : 0;
        int[] allowed = task.AllowedCpus;
        long interval = BusyBalanceIntervalNs(allowed.Length, Params.BalanceScale);
        long idleInterval = IdleBalanceIntervalNs(allowed.Length, Params.BalanceScale);
        long tick = _c.TickNs;
        long best = long.MaxValue;
        int bestCpu = -1;
        foreach (int j in allowed)
        {
            if (j == cpu.Id)
            {
                continue;
            }
            Cpu other = _cpus[j];
            long at;
            if (other.IdleSince >= 0 && NrRunning(other) == 0)
            {
                if (!running && other.NewidleBalance && other.IdleSince >= since)
                {
                    at = other.IdleSince;
                }
                else
                {
                    long from = Math.Max(since, other.IdleSince + idleInterval) + failures * idleInterval;
                    at = (from + tick - 1) / tick * tick;
                }
            }
            else if (NrRunning(other) == 1)
            {
                long phase = (long)(_balancePhase[j] * interval);
                long k = since - phase <= 0 ? 0 : (since - phase + interval - 1) / interval;
                at = phase + (k + failures) * interval;
            }
            else
            {
                continue;
            }
            if (at < best)
            {
                best = at;
                bestCpu = j;
            }
        }
        return (best, bestCpu);
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
        if (NrRunning(cpu) == 1)
        {
            cpu.SharedSince = t;
        }
        cpu.IdleSince = -1;
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
    /// At a step end of a CPU holding more than one runnable task: if a balance of another CPU
    /// has come since it became so loaded (<see cref="NextPull"/>), that CPU takes a task — one
    /// that waits and may run elsewhere (detach_tasks), else, when the waiting ones are bound to
    /// this CPU, the running one once enough balances have failed (active balance,
    /// <see cref="ActiveBalanceAfter"/>). Returns whether the running task left.
    /// </summary>
    private bool PullAway(Cpu cpu, long t, bool sync)
    {
        SimTask? mover = null;
        foreach (SimTask w in cpu.RunQueue)
        {
            if (w.AllowedCpus.Length > 1)
            {
                mover = w;
                break;
            }
        }
        SimTask? cur = cpu.Current;
        bool current = false;
        if (mover is null && cur is not null && !sync && cur.AllowedCpus.Length > 1)
        {
            mover = cur;
            current = true;
        }
        if (mover is null)
        {
            return false;
        }
        (long pullAt, int pullCpu) = NextPull(mover, cpu, cpu.SharedSince, running: current);
        if (pullAt > t)
        {
            return false;
        }
        if (current)
        {
            cpu.Current = null;
        }
        else
        {
            cpu.RunQueue.Remove(mover);
        }
        Cpu next = _cpus[pullCpu];
        mover.HomeCpu = next;
        Enqueue(next, mover, t, wakeup: false);
        return current;
    }

    private void OnCpuStepEnd(long t, int id)
    {
        Cpu cpu = _cpus[id];
        cpu.EventPending = false;
        SimTask? cur = cpu.Current;
        bool sync = cur?.Body?.Current == Yield.Sync; // the task goes on: no preemption point
        if (Params.Spread && NrRunning(cpu) > 1 && PullAway(cpu, t, sync))
        {
            cur = null;
        }
        if (cur is not null && !sync && cpu.RunQueue.Count > 0 && (cpu.NeedResched || t >= SliceEnd(cpu)))
        {
            // Preempted: to the back of the run queue.
            cpu.Current = null;
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
                    cpu.IdleSince = t; // rq->idle_stamp; idle_balance tries only if idle periods have averaged long enough
                    cpu.NewidleBalance = cpu.AvgIdleNs >= MigrationCostNs;
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
