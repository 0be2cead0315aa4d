using Shootdown.Hardware;

namespace Shootdown.Kernel.Sched;

/// <summary>One CPU: its TLB, what it runs, its lazy-TLB state, and its time accounting.</summary>
public sealed class Cpu
{
    public const int PagevecSize = 14; // PAGEVEC_SIZE in Linux 4.0

    public Cpu(int id, int node, CostModel costs)
    {
        Id = id;
        Node = node;
        Tlb = new Tlb(costs.TlbEntries, costs.TlbWays);
        Costs = costs;
    }

    /// <summary>
    /// The constants of what this CPU runs now: set at each step's start for the step, and at an
    /// interrupt's delivery for its handler — the machine's own while another thread of its core is
    /// busy, the lone thread's (<see cref="CostModel.LoneThread"/>) while none is
    /// (<see cref="Scheduler.CostsOn"/>).
    /// </summary>
    public CostModel Costs;

    public int Id { get; }

    public int Node { get; }

    public Tlb Tlb { get; }

    /// <summary>cpu_tlbstate.active_mm: the mm whose page table CR3 points at (-1 = init_mm).</summary>
    public int ActiveMm = -1;

    /// <summary>cpu_tlbstate.state == TLBSTATE_LAZY: a kernel thread borrows ActiveMm.</summary>
    public bool Lazy;

    /// <summary>The task running here; null when the CPU is idle.</summary>
    public SimTask? Current;

    /// <summary>Task that ran last (what a context switch switches away from); null after the idle task ran.</summary>
    public SimTask? Prev;

    public readonly List<SimTask> RunQueue = [];

    /// <summary>When the current task was picked (set_next_entity: its slice counts from here).</summary>
    public long SliceStart;

    /// <summary>Since when this CPU has had more than one runnable task without a break (the load a balance elsewhere finds).</summary>
    public long SharedSince;

    /// <summary>When this CPU last went idle (rq->idle_stamp, which avg_idle samples at the next wakeup); -1 while it runs something, and before it first went idle (no sample).</summary>
    public long IdleSince = -1;

    /// <summary>rq->avg_idle: the average length of this CPU's idle periods (1/8 per sample), at most 2 x sysctl_sched_migration_cost; starts at that cap.</summary>
    public long AvgIdleNs = 2 * Scheduler.MigrationCostNs;

    /// <summary>sd->balance_interval of this CPU's socket domain (MC; before busy_factor), in ns.</summary>
    public long BalanceIntervalNs;

    /// <summary>sd->last_balance: the tick (jiffy, in ns) of this CPU's last periodic balance of its socket domain.</summary>
    public long LastBalanceAt;

    /// <summary>rq->next_balance: the tick from which this CPU's next periodic balance is due (at its own tick while busy, by the nohz idle balancer while idle).</summary>
    public long NextBalanceAt;

    /// <summary>When this CPU's pending balance event is due (a busy CPU's tick at or after <see cref="NextBalanceAt"/>); -1: none. Events at other times are stale.</summary>
    public long BalanceEventAt = -1;

    /// <summary>
    /// rq->cfs_tasks: the CFS tasks on this CPU, running or waiting, most recently enqueued first
    /// (account_entity_enqueue adds at the head; a task a balance skips goes to the tail). The
    /// order in which a balance considers them (detach_tasks, detach_one_task).
    /// </summary>
    public readonly List<SimTask> CfsTasks = [];

    /// <summary>sd->nr_balance_failed of the socket domain: this CPU's balances in a row that found an imbalance and moved nothing.</summary>
    public int NrBalanceFailed;

    /// <summary>sd->balance_interval of this CPU's SMT domain (its core's hyperthreads), on a machine with more than one thread per core.</summary>
    public long SmtBalanceIntervalNs;

    /// <summary>sd->last_balance of this CPU's SMT domain.</summary>
    public long SmtLastBalanceAt;

    /// <summary>sd->nr_balance_failed of this CPU's SMT domain.</summary>
    public int SmtNrBalanceFailed;

    /// <summary>rq->push_cpu while an active balance is pending on this CPU (its stopper moves the running task there); -1: none.</summary>
    public int PushTo = -1;

    public bool NeedResched;

    public bool EventPending;

    /// <summary>Interrupt handler time taken while a task ran here, not yet absorbed: delays that CPU's next step.</summary>
    public long IrqDebtNs;

    /// <summary>While idle: when the interrupt handlers it took end (a task woken here starts no earlier).</summary>
    public long IrqBusyUntil;

    /// <summary>When the step computed last on this CPU ends: before it the CPU is busy, after it idle unless a new step starts.</summary>
    public long StepEnd;

    /// <summary>Up to when this CPU, as a sender, has been charged late IPI acknowledgements (X86TlbFlush).</summary>
    public long LateAckUntil;

    /// <summary>This CPU's call_single_queue as the call-function IPIs sent here see it (X86TlbFlush).</summary>
    public readonly CallSingleQueue CallQueue = new();

    /// <summary>Call-function IPIs sent here so far: their serials (0: none).</summary>
    public int IpiSerials;

    public long UserNs;

    public long SysNs;

    /// <summary>Part of SysNs spent in interrupt handlers.</summary>
    public long IrqNs;

    /// <summary>Part of SysNs spent spinning on contended locks.</summary>
    public long SpinNs;

    /// <summary>Part of SysNs spent waiting for TLB shootdown acknowledgements.</summary>
    public long IpiWaitNs;

    /// <summary>irq_tlb_count, /proc/interrupts "TLB: TLB shootdowns": every run of x86's flush_tlb_func.</summary>
    public long TlbShootdowns;

    /// <summary>irq_call_count: every call-function IPI received (TLB flushes, and drain_all_pages).</summary>
    public long CallFunctionIrqs;

    /// <summary>Of <see cref="CallFunctionIrqs"/>, those for no TLB flush (drain_all_pages).</summary>
    public long OtherCallFunctionIrqs;

    /// <summary>/proc/interrupts "LOC: Local timer interrupts".</summary>
    public long TimerTicks;

    /// <summary>irq_resched_count, /proc/interrupts "RES: Rescheduling interrupts".</summary>
    public long ReschedIrqs;

    /// <summary>
    /// Intervals of the current step with interrupts disabled (spinning on or holding an irq-safe
    /// spinlock: lru_lock, tree_lock and zone->lock are all taken with spin_lock_irq in 4.0). An IPI
    /// arriving inside one is handled when it ends.
    /// </summary>
    public long[] IrqOffStart = new long[16];
    public long[] IrqOffEnd = new long[16];
    public int IrqOffCount;

    // The previous step's intervals, kept for an IPI that arrives while that step's handler time
    // is being absorbed (see IrqEnabledAt).
    private long[] _prevOffStart = new long[16];
    private long[] _prevOffEnd = new long[16];
    private int _prevOffCount;

    // The handlers known to run on this CPU while it was busy, [start, end), in the order they were
    // resolved (the order of their senders' events, not of their arrivals, so not in time order).
    // x86 runs a hardirq handler with interrupts off — the interrupt gate clears IF, the
    // call-function handlers never set it again, and device handlers run so too since 2.6.35
    // (e58aa3d2d0cc "genirq: Run irq handlers with interrupts disabled") — so an interrupt arriving
    // inside one is taken when it returns. Every handler still running at the simulation's
    // current time is kept (an interrupt is only ever resolved at or after that time); a slot
    // whose handler has returned by then is reused.
    private long[] _handlerStart = new long[4];
    private long[] _handlerEnd = new long[4];
    private int _handlerCount;

    /// <summary>Handlers remembered now, live or not yet reused (for tests).</summary>
    public int HandlersRemembered => _handlerCount;

    /// <summary>
    /// When an interrupt that could run at <paramref name="t"/> as far as the interrupted work is
    /// concerned runs: after every known handler it arrives inside (and the ones those end inside).
    /// </summary>
    public long AfterHandlers(long t)
    {
        bool moved;
        do
        {
            moved = false;
            for (int i = 0; i < _handlerCount; i++)
            {
                if (_handlerStart[i] <= t && t < _handlerEnd[i])
                {
                    t = _handlerEnd[i];
                    moved = true;
                }
            }
        }
        while (moved);
        return t;
    }

    /// <summary>
    /// Remembers a handler (or a request's work run in one) taken while busy,
    /// [<paramref name="start"/>, <paramref name="end"/>), in the slot of one that returned by
    /// <paramref name="now"/> (the simulation's current time), or in a new one.
    /// </summary>
    public void NoteHandler(long start, long end, long now)
    {
        for (int i = 0; i < _handlerCount; i++)
        {
            if (_handlerEnd[i] <= now)
            {
                _handlerStart[i] = start;
                _handlerEnd[i] = end;
                return;
            }
        }
        AppendInterval(ref _handlerStart, ref _handlerEnd, ref _handlerCount, start, end);
    }

    /// <summary>Appends [<paramref name="start"/>, <paramref name="end"/>) to a pair of interval arrays, doubling them when full.</summary>
    private static void AppendInterval(ref long[] starts, ref long[] ends, ref int count, long start, long end)
    {
        if (count == starts.Length)
        {
            Array.Resize(ref starts, count * 2);
            Array.Resize(ref ends, count * 2);
        }
        starts[count] = start;
        ends[count] = end;
        count++;
    }

    /// <summary>
    /// When an interrupt arriving at <paramref name="t"/> on this busy CPU runs: once interrupts are
    /// on in the interrupted work (<see cref="IrqEnabledAt"/>) and no handler runs.
    /// </summary>
    public long InterruptTakenAt(long t)
    {
        while (true)
        {
            long u = AfterHandlers(IrqEnabledAt(t));
            if (u == t)
            {
                return t;
            }
            t = u;
        }
    }

    /// <summary>When the current step's own work starts (after the handler time it absorbs).</summary>
    public long StepStart;

    /// <summary>
    /// When the handler time absorbed before the current step (<see cref="IrqDebtNs"/> taken over
    /// from the step before it) begins: the event time the step was computed at, or the end of the
    /// handlers an idle CPU ran, whichever is later.
    /// </summary>
    public long DebtFrom;

    /// <summary>
    /// Starts a step whose work begins at <paramref name="start"/>, the handler time taken during
    /// the step before (<c>start - debtFrom</c>, absorbed from <paramref name="debtFrom"/>: the
    /// event time the step was computed at, or the end of the handlers an idle CPU ran) pushing
    /// that step's work on into <c>[debtFrom, start)</c>; so its interrupts-off intervals are kept,
    /// to be read there shifted by that time.
    /// </summary>
    public void BeginStep(long debtFrom, long start)
    {
        (_prevOffStart, IrqOffStart) = (IrqOffStart, _prevOffStart);
        (_prevOffEnd, IrqOffEnd) = (IrqOffEnd, _prevOffEnd);
        _prevOffCount = IrqOffCount;
        IrqOffCount = 0;
        DebtFrom = debtFrom;
        StepStart = start;
    }

    public void AddIrqOff(long start, long end) => AppendInterval(ref IrqOffStart, ref IrqOffEnd, ref IrqOffCount, start, end);

    /// <summary>
    /// When an interrupt arriving at <paramref name="t"/> on this busy CPU can run. Inside the
    /// current step: at the end of the interrupts-off interval it falls in, if any. Before the
    /// step's work starts, the CPU is still absorbing the handler time the step before it was
    /// charged (the model charges a handler taken during a step to the start of the next one,
    /// <see cref="IrqDebtNs"/>): that step's work, pushed on by the handlers, runs in
    /// <c>[DebtFrom, StepStart)</c>, so the arrival meets the previous step's state at
    /// <c>t - (StepStart - DebtFrom)</c> — handled at once if its interrupts were on, else when
    /// that interval, so shifted, ends. Before <see cref="DebtFrom"/>, the CPU still runs the
    /// handlers it took while idle (interrupts off), and the arrival waits for them.
    /// </summary>
    public long IrqEnabledAt(long t)
    {
        if (t < StepStart)
        {
            t = Math.Max(t, DebtFrom);
            long shift = StepStart - DebtFrom; // > 0 whenever t < StepStart here
            if (t < StepStart)
            {
                long end = OffEndAt(_prevOffStart, _prevOffEnd, _prevOffCount, t - shift);
                return end == NotOff ? t : end + shift;
            }
            return t;
        }
        long e = OffEndAt(IrqOffStart, IrqOffEnd, IrqOffCount, t);
        return e == NotOff ? t : e;
    }

    private const long NotOff = long.MinValue;

    /// <summary>The end of the interval of <paramref name="starts"/>/<paramref name="ends"/> holding <paramref name="t"/>, or <see cref="NotOff"/>.</summary>
    private static long OffEndAt(long[] starts, long[] ends, int count, long t)
    {
        // The intervals are added in time order and do not overlap (a step's time only moves
        // forward): binary search for the last one starting at or before t.
        int lo = 0, hi = count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (starts[mid] <= t)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return found >= 0 && t < ends[found] ? ends[found] : NotOff;
    }

    /// <summary>The CPU that last wrote this CPU's call_single_queue head (-1: none; <see cref="CacheLines"/>).</summary>
    public int CallSingleQueueOwner = -1;

    /// <summary>The per-CPU lru_add_pvec.</summary>
    public readonly int[] Pagevec = new int[PagevecSize];
    public int PagevecCount;
}
