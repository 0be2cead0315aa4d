using Shootdown.Kernel.Mm;
using Shootdown.Policies;

namespace Shootdown.Kernel.Sched;

public enum TaskState
{
    Runnable,
    Sleeping,
    Exited,
}

/// <summary>What a process does where simulated time passes (the end of a step).</summary>
public enum Yield
{
    /// <summary>cond_resched(): the step ends; the task stays runnable (the CPU may preempt it).</summary>
    Resched,

    /// <summary>schedule() in TASK_INTERRUPTIBLE: the step ends and the task sleeps until woken.</summary>
    Sleep,

    /// <summary>
    /// Not a kernel preemption point: the step ends only so that the simulation catches up — the
    /// other CPUs' steps up to this time are computed before the next step starts — and the task
    /// keeps its CPU (no preemption, a pending need_resched waits for the next
    /// <see cref="Resched"/>). A step is computed when it starts, so work it does after an IPI it
    /// sends cannot see its receivers' state at the arrival unless they have been simulated that
    /// far; a sync point right before the send makes that the usual case.
    /// </summary>
    Sync,

    /// <summary>
    /// Not a step end: runs the process <see cref="Process.Call"/> set as a call, in the same step;
    /// the caller resumes when it ends (<see cref="ProcessRunner"/>). Yielded as
    /// <c>yield return Process.Call(sub);</c>, it does what <c>foreach (var y in sub) yield return y;</c>
    /// does, but each later step resumes the callee directly, not through every caller. A process
    /// that calls must run under a <see cref="ProcessRunner"/> (the scheduler's for every task; tests
    /// wrap the processes they drive in one): a <c>foreach</c> relay passes the call on to it.
    /// </summary>
    Call,
}

/// <summary>Sub-process calls (<see cref="Yield.Call"/>).</summary>
public static class Process
{
    [ThreadStatic]
    private static IEnumerator<Yield>? _pending;

    /// <summary>Makes <paramref name="sub"/> the process to call; yield what this returns.</summary>
    public static Yield Call(IEnumerable<Yield> sub)
    {
        _pending = sub.GetEnumerator();
        return Yield.Call;
    }

    /// <summary>The process a <see cref="Yield.Call"/> just asked for (each simulation runs on one thread, so nothing runs between the yield and this).</summary>
    internal static IEnumerator<Yield> TakePending()
    {
        IEnumerator<Yield> p = _pending ?? throw new InvalidOperationException("Yield.Call without Process.Call");
        _pending = null;
        return p;
    }
}

/// <summary>
/// Runs a process and the processes it calls (<see cref="Yield.Call"/>) as one: a stack of
/// enumerators whose top is resumed directly, so a step deep in nested kernel paths costs one
/// MoveNext, not one per enclosing caller. A callee that ends is popped and its caller resumed in
/// the same step, as a <c>foreach</c> over it would. It yields only step ends.
/// </summary>
public sealed class ProcessRunner : IEnumerator<Yield>
{
    private IEnumerator<Yield>[] _stack = new IEnumerator<Yield>[8];
    private int _depth;

    public ProcessRunner(IEnumerator<Yield> root)
    {
        _stack[0] = root;
        _depth = 1;
    }

    public ProcessRunner(IEnumerable<Yield> root)
        : this(root.GetEnumerator())
    {
    }

    public Yield Current { get; private set; }

    object System.Collections.IEnumerator.Current => Current;

    public bool MoveNext()
    {
        while (_depth > 0)
        {
            IEnumerator<Yield> top = _stack[_depth - 1];
            if (!top.MoveNext())
            {
                top.Dispose();
                _stack[--_depth] = null!;
                continue; // a callee ended: its caller goes on (the root ending ends the process)
            }
            Yield y = top.Current;
            if (y != Yield.Call)
            {
                Current = y;
                return true;
            }
            if (_depth == _stack.Length)
            {
                Array.Resize(ref _stack, _depth * 2);
            }
            IEnumerator<Yield> callee = Process.TakePending(); // before the push: a refused call leaves the stack as it was
            _stack[_depth++] = callee;
        }
        return false;
    }

    /// <summary>Disposes every process still on the stack, innermost first.</summary>
    public void Dispose()
    {
        while (_depth > 0)
        {
            _stack[--_depth].Dispose();
            _stack[_depth] = null!;
        }
    }

    void System.Collections.IEnumerator.Reset() => throw new NotSupportedException();
}

/// <summary>
/// A simulated task (task_struct): a user process's thread or a kernel thread, written as a process
/// — a C# iterator, as SimPy writes processes as generators. <see cref="Run"/> is the task's whole
/// life: it performs state changes and charges their cost to the step's <see cref="Exec"/>, and
/// yields where the step ends (<see cref="Yield.Resched"/>, or <see cref="Yield.Sync"/> where the
/// kernel has no preemption point) or where it sleeps (<see cref="Yield.Sleep"/>); when it
/// returns, the task exits (do_exit). Kernel paths that can end a step (direct reclaim, kswapd's
/// balance_pgdat) are iterators too, called with
/// <c>yield return Process.Call(Path(...));</c> (<see cref="ProcessRunner"/> resumes the innermost
/// directly) or, equivalently but more slowly, <c>foreach (var y in Path(...)) yield return y;</c>.
/// </summary>
public abstract class SimTask
{
    protected SimTask(int pid, string comm, MmStruct? mm, Cpu homeCpu)
    {
        Pid = pid;
        Comm = comm;
        Mm = mm;
        HomeCpu = homeCpu;
        AllowedCpus = [homeCpu.Id];
        if (mm is not null)
        {
            mm.Users++; // clone(CLONE_VM) / fork: one more user of the mm
        }
    }

    public int Pid { get; }

    public string Comm { get; }

    /// <summary>task->mm; null for kernel threads (and after exit_mm), which run on a borrowed mm (lazy TLB).</summary>
    public MmStruct? Mm { get; internal set; }

    /// <summary>The CPU whose run queue holds the task.</summary>
    public Cpu HomeCpu { get; internal set; }

    /// <summary>tsk->cpus_allowed: the CPUs the scheduler may run the task on (kswapd: its node's).</summary>
    public int[] AllowedCpus { get; init; }

    public TaskState State { get; internal set; } = TaskState.Sleeping;

    /// <summary>Whether the run waits for this task to exit (user tasks; not kernel threads).</summary>
    public bool IsUserTask { get; internal set; }

    /// <summary>Called with the time when the task has exited (do_exit done; a waiting parent wakes then).</summary>
    public Action<long>? Reaped { get; init; }

    /// <summary>When the task's last step ended in do_exit (ns; -1 while it lives).</summary>
    public long ExitedAt { get; internal set; } = -1;

    /// <summary>Time spent runnable on a run queue, not running (schedstat run_delay), ns.</summary>
    public long RunDelayNs { get; internal set; }

    /// <summary>When the task's last step on a CPU ended (se.exec_start as a balance reads it for a waiting task: task_hot).</summary>
    internal long LastRanAt = long.MinValue / 2;

    /// <summary>When the task last joined a run queue (-1: it is running or asleep).</summary>
    internal long QueuedAt = -1;

    /// <summary>How many times a load balance moved the task to another CPU (se.nr_migrations, less wakeup placements).</summary>
    public long Migrations { get; internal set; }

    /// <summary>When the task was started with the run (ns; -1 for a task that starts asleep, woken by another, such as the case script's rm).</summary>
    public long StartedAt { get; internal set; } = -1;

    /// <summary>CPU time charged to this task (getrusage's ru_utime): its steps' user time.</summary>
    public long UserNs;

    /// <summary>
    /// System time charged to this task (ru_stime): its steps' system time, late IPI waits, and the
    /// interrupt handlers that ran while it was on its CPU (4.0's tick accounting adds hardirq
    /// time to the interrupted task's stime).
    /// </summary>
    public long SysNs;

    /// <summary>task->tlb_ubc: the deferred-flush batch of a reclaiming task (policies that batch).</summary>
    public TlbUnmapBatch? Batch { get; internal set; }

    /// <summary>The task's scan_control while it reclaims (kswapd's balance_pgdat or direct reclaim), reused.</summary>
    public ScanControl? Sc { get; set; }

    /// <summary>The task's __alloc_pages_slowpath call (its arguments and reusable process), created on its first slow allocation.</summary>
    internal PageAlloc.SlowpathArgs? AllocSlowpath;

    /// <summary>The task's fault waiting for the allocator's slow path, created on the first such fault.</summary>
    internal Fault.PendingFault? PendingFault;

    /// <summary>The task's per-fault page stash (pages allocated for a fault-around window).</summary>
    internal int[] AllocStash = new int[16];

    /// <summary>The task's migration lists (source and destination frames of a batch), allocated on its first migration.</summary>
    internal int[]? MigrateFrom;
    internal int[]? MigrateTo;

    /// <summary>The one-page list of migrate_misplaced_page.</summary>
    internal int[]? MigrateList;


    /// <summary>What the task's last step did (<see cref="Exec.What"/>); the next step starts from it.</summary>
    internal string What = "run";

    /// <summary>The breakdown entry of <see cref="What"/> (the scheduler's cache of its look-up).</summary>
    internal PathTime? Path;

    /// <summary>The process body with the processes it calls, started by the scheduler on the task's first step.</summary>
    internal ProcessRunner? Body;

    /// <summary>Index of the task's timer (schedule_timeout), -1 until it first sleeps on one.</summary>
    internal int TimerId = -1;

    /// <summary>The task's life as a process; see the class comment.</summary>
    protected internal abstract IEnumerable<Yield> Run(Sim sim);
}

/// <summary>The cost accumulator of one step on one CPU. <see cref="Now"/> is the simulated time
/// reached so far inside the step.</summary>
public sealed class Exec(Hardware.CostModel costs, Hardware.CacheLines lines)
{
    /// <summary>The step's cost model: its CPU's (<see cref="Cpu.Costs"/>), set by <see cref="Reset"/>.</summary>
    public Hardware.CostModel Costs = costs;
    /// <summary>Where cache lines are, and what moving them costs.</summary>
    public readonly Hardware.CacheLines Lines = lines;
    public Cpu Cpu = null!;
    public SimTask Task = null!;
    /// <summary>The event time this step started from (no lock request can come earlier).</summary>
    public long EventTime;
    public long Start;
    public long User;
    public long Sys;
    public long Spin;
    public long IpiWait;

    /// <summary>What the step did, for timelines ("fault+read", "direct reclaim", ...).</summary>
    public string What = "run";

    /// <summary>What the flushes of this step are for (accounting only: tlb_ipis_by_cause).</summary>
    public Observe.FlushCause FlushCause;

    public long Now => Start + User + Sys;

    public void Reset(Cpu cpu, SimTask task, long eventTime, long start)
    {
        EventTime = eventTime;
        Cpu = cpu;
        Costs = cpu.Costs;
        Task = task;
        Start = start;
        User = Sys = Spin = IpiWait = 0;
        What = task.What; // a step resumed after a yield goes on with what the last one did
        FlushCause = Observe.FlushCause.Other;
    }

    /// <summary>
    /// Charges an irq-safe spinlock section (spin_lock_irq ... spin_unlock_irq): the acquisition,
    /// any spinning and the hold are system time, and interrupts stay off throughout. Only time
    /// spent waiting for another holder counts as spinning. <paramref name="lockLineWrites"/>: the
    /// section's writes to data sharing the lock word's cache line (<see cref="Kernel.SpinLock.Hold"/>).
    /// </summary>
    public void LockHold(Kernel.SpinLock l, long holdNs, int lockLineWrites = 0)
    {
        long t = Now;
        long end = l.Hold(EventTime, t, Cpu.Id, holdNs, Lines, Costs, out long spin, lockLineWrites);
        Spin += spin;
        Sys += end - t;
        Cpu.AddIrqOff(t, end);
    }

    /// <summary>
    /// Charges a plain spinlock section (spin_lock ... spin_unlock, interrupts on) whose work the
    /// caller has charged since <paramref name="t0"/>: adds the acquisition, the lock word's line and
    /// any wait for another holder (spinning). The work inside was timed as if the lock had been
    /// free at <paramref name="t0"/>; after a wait it ran later by the wait, which moves only the
    /// instants of what it did (an IPI sent inside), not their costs.
    /// </summary>
    public void LockAround(Kernel.SpinLock l, long t0)
    {
        long work = Now - t0;
        long end = l.Hold(EventTime, t0, Cpu.Id, work, Lines, Costs, out long spin);
        Sys += end - t0 - work;
        Spin += spin;
    }

    /// <summary>Writes a struct page (or another tracked line) outside any lock: its line comes to this CPU.</summary>
    public void TakeLine(ref Mm.Page page, int memNode) => Sys += Lines.Take(ref page, Cpu.Id, memNode);
}

/// <summary>
/// A kernel path that a task runs again and again (direct reclaim, kswapd's balance_pgdat and the
/// functions under them, the allocator's slow path), as one long-lived iterator per task: its body
/// is an endless loop, each turn one call of the kernel function, ending with
/// <see cref="PassEnd"/>. <see cref="Start"/> returns the object itself as the process of the next
/// call — its yields up to the end of the turn — so a call allocates nothing, where calling an
/// iterator method allocates its state object every time (once per 32-page batch in reclaim). The
/// body reads the call's arguments from fields its owner set before <see cref="Start"/>.
/// </summary>
public sealed class ReusableProcess(Func<IEnumerable<Yield>> body) : IEnumerable<Yield>, IEnumerator<Yield>
{
    /// <summary>Ends one turn of a body's loop; never passed on to the caller.</summary>
    public const Yield PassEnd = (Yield)(-1);

    private IEnumerator<Yield>? _process;
    private bool _inPass;

    /// <summary>Starts the next call. A call left unfinished (a test that stopped early) is abandoned: the body starts afresh.</summary>
    public IEnumerable<Yield> Start()
    {
        if (_process is null || _inPass)
        {
            _process = body().GetEnumerator();
        }
        _inPass = true;
        return this;
    }

    public Yield Current => _process!.Current;

    public bool MoveNext()
    {
        if (!_inPass)
        {
            return false;
        }
        _process!.MoveNext(); // the body loops forever
        if (_process.Current == PassEnd)
        {
            _inPass = false;
            return false;
        }
        return true;
    }

    /// <summary>Nothing to release: the process outlives the call.</summary>
    public void Dispose()
    {
    }

    public IEnumerator<Yield> GetEnumerator() => this;

    object System.Collections.IEnumerator.Current => Current;

    void System.Collections.IEnumerator.Reset() => throw new NotSupportedException();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => this;
}
