using Shootdown.Kernel.Mm;
using Shootdown.Policies;

namespace Shootdown.Kernel.Sched;

public enum TaskState
{
    Runnable,
    Sleeping,
    Exited,
}

public enum StepResult
{
    /// <summary>The task stays runnable; the CPU continues with it (or preempts it) when the step ends.</summary>
    Continue,
    /// <summary>The task goes to sleep when the step ends.</summary>
    Sleep,
    /// <summary>The task exits when the step ends.</summary>
    Exit,
}

/// <summary>
/// A simulated task (task_struct): a user process's thread or a kernel thread. Work happens in
/// steps: <see cref="Step"/> performs the state changes of one step and charges its cost to
/// <see cref="Exec"/>; the CPU is busy until the step's end.
/// </summary>
public abstract class SimTask
{
    protected SimTask(int pid, string comm, MmStruct? mm, Cpu homeCpu)
    {
        Pid = pid;
        Comm = comm;
        Mm = mm;
        HomeCpu = homeCpu;
    }

    public int Pid { get; }

    public string Comm { get; }

    /// <summary>task->mm; null for kernel threads, which run on a borrowed mm (lazy TLB).</summary>
    public MmStruct? Mm { get; }

    /// <summary>The CPU whose run queue holds the task (kswapd moves between its node's CPUs).</summary>
    public Cpu HomeCpu { get; internal set; }

    public TaskState State { get; internal set; } = TaskState.Sleeping;

    /// <summary>task->tlb_ubc: the deferred-flush batch of a reclaiming task (policies that batch).</summary>
    public TlbUnmapBatch? Batch { get; internal set; }

    /// <summary>Reclaim in progress (kswapd's balance_pgdat or direct reclaim), if any.</summary>
    public ScanControl? Sc { get; set; }

    public bool IsKswapd { get; protected init; }

    /// <summary>An allocation failed and the task is in direct reclaim (<see cref="Kernel.Mm.Vmscan.AllocPagesOrReclaim"/>).</summary>
    internal bool InDirectReclaim;

    /// <summary>The task's next allocation retries after a direct reclaim (may dip below the watermark).</summary>
    internal bool AfterDirectReclaim;

    /// <summary>Direct reclaims in a row that freed nothing (out of memory past 1000).</summary>
    internal int FruitlessReclaims;

    public abstract StepResult Step(Sim sim, Exec ex);
}

/// <summary>The cost accumulator of one step on one CPU. <see cref="Now"/> is the simulated time
/// reached so far inside the step.</summary>
public sealed class Exec
{
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

    public long Now => Start + User + Sys;

    public void Reset(Cpu cpu, SimTask task, long eventTime, long start)
    {
        EventTime = eventTime;
        cpu.IrqOffCount = 0;
        Cpu = cpu;
        Task = task;
        Start = start;
        User = Sys = Spin = IpiWait = 0;
        What = "run";
    }

    /// <summary>
    /// Charges an irq-safe spinlock hold (spin_lock_irq): the spin and the hold are system time,
    /// and interrupts stay off throughout.
    /// </summary>
    public void LockHold(Kernel.SpinLock l, long holdNs, Hardware.CostModel costs)
    {
        long t = Now;
        long end = l.Hold(EventTime, t, Cpu.Node, holdNs, costs, out long spin);
        Spin += spin;
        Sys += end - t;
        Cpu.AddIrqOff(t, end);
    }
}
