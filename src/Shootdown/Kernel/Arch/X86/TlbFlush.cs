using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Kernel.Arch.X86;

/// <summary>
/// arch/x86/mm/tlb.c and asm/mmu_context.h of Linux 4.0 (with the batched-flush hooks as 4.3 wrote
/// them and 4.13 moved them into arch code, e73ad5ff2f76): switch_mm, enter_lazy_tlb, leave_mm,
/// flush_tlb_page, flush_tlb_mm_range, flush_tlb_others and its handler flush_tlb_func, and the
/// IPI transport of smp_call_function_many.
/// <para>
/// Costs: an IPI costs the sender one APIC write per target and a synchronous wait for the slowest
/// acknowledgement; each receiver pays interrupt entry/exit plus its handler, taken when its
/// interrupts are on. Counters as the kernel keeps them: nr_tlb_remote_flush once per
/// flush_tlb_others call; irq_tlb_count ("TLB shootdowns" in /proc/interrupts) on every
/// flush_tlb_func run; nr_tlb_remote_flush_received only when the request's mm is the receiver's
/// active mm (or the request names none); irq_call_count on every call-function IPI (CAL shows
/// irq_call_count - irq_tlb_count).
/// </para>
/// </summary>
public sealed class X86TlbFlush : IArchTlb
{
    private readonly Cpu[] _cpus;
    private readonly List<MmStruct> _mms;
    private readonly CostModel _c;
    private readonly VmStat _vmstat;
    private readonly TimeSeries _series;
    private readonly int _nodes;

    /// <summary>IPI latency from a sender's node to a receiver's (row-major): same node, or the remote latency scaled by their distance.</summary>
    private readonly long[] _ipiLatency;
    private readonly int _ceiling;

    /// <summary>The part of <see cref="CostModel.IrqEntryExitNs"/> after the handler's function and csd_unlock on <paramref name="r"/>, at the constants its handler runs at: irq_exit and the return, half of it.</summary>
    private static long IrqExitNs(Cpu r) => r.Costs.IrqEntryExitNs / 2;

    /// <summary>
    /// The constants a CPU runs at from a time (the scheduler's: whether another thread of its
    /// core is busy); set by the composition root. A receiver's handler runs at those of its
    /// delivery. Null: the machine's own everywhere.
    /// </summary>
    public Func<Cpu, long, CostModel>? CostsOn { get; set; }

    private void SetHandlerCosts(Cpu r, long t) => r.Costs = CostsOn is null ? _c : CostsOn(r, t);
    private readonly FlushTlbInfo _info = new();
    private readonly SmpCallFunc _flushTlbFunc;

    /// <summary>Per sender, the CPUs its previous smp_call_function_many call targeted (null: no call yet).</summary>
    private readonly Cpumask?[] _prevTargets;

    /// <summary>The CPUs the call in progress targets; swapped with the sender's previous set when it ends.</summary>
    private Cpumask _curTargets;

    /// <param name="cpus">The machine's CPUs.</param>
    /// <param name="mms">Every mm by id (switch_mm and leave_mm clear the old mm's cpumask).</param>
    /// <param name="costs">Hardware costs (INVLPG, CR3 write, APIC, IPI latency, interrupt entry).</param>
    /// <param name="vmstat">Where the TLB counters go.</param>
    /// <param name="series">Where interrupts per interval go.</param>
    /// <param name="flushCeiling">tlb_single_page_flush_ceiling (33 in 4.0).</param>
    /// <param name="distance">NUMA distances: a remote IPI's latency scales with its nodes' distance.</param>
    /// <summary>The cache-line model (set by the composition root).</summary>
    public CacheLines Lines { get; set; } = null!;

    public X86TlbFlush(Cpu[] cpus, List<MmStruct> mms, CostModel costs, VmStat vmstat, TimeSeries series, int flushCeiling, NumaDistance distance)
    {
        _nodes = distance.Nodes;
        _ipiLatency = new long[_nodes * _nodes];
        for (int from = 0; from < _nodes; from++)
        {
            for (int to = 0; to < _nodes; to++)
            {
                _ipiLatency[from * _nodes + to] = from == to ? costs.IpiLatencySameNodeNs : distance.Scale(costs.IpiLatencyRemoteNodeNs, from, to);
            }
        }
        _cpus = cpus;
        _mms = mms;
        _c = costs;
        _vmstat = vmstat;
        _series = series;
        _ceiling = flushCeiling;
        _flushTlbFunc = FlushTlbFunc;
        _prevTargets = new Cpumask?[cpus.Length];
        _curTargets = new Cpumask(cpus.Length);
    }

    public string Name => "x86";

    /// <summary>Tracepoints; null when tracing is off.</summary>
    public Tracer? Trace { get; set; }

    /// <summary>TLB-flush IPIs sent, by what the flush was for (indexed by <see cref="FlushCause"/>).</summary>
    public long[] IpisByCause { get; } = new long[Enum.GetValues<FlushCause>().Length];

    // ---- the lazy-TLB state machine ------------------------------------------------------------

    /// <summary>
    /// switch_mm of 4.0 (no PCID): switching to a different mm reloads CR3 (a full flush), sets this
    /// CPU in the new mm's cpumask and clears it from the old one's; coming back to the mm this CPU
    /// still holds lazily only leaves lazy mode (and reloads CR3 if it is no longer in the mm's
    /// cpumask). After leave_mm the model records init_mm as loaded (ActiveMm = -1) where 4.0 keeps
    /// cpu_tlbstate.active_mm and tests the cpumask; both reload CR3 on the next switch to the mm.
    /// A kernel thread borrows whatever is loaded (enter_lazy_tlb).
    /// </summary>
    public void SwitchMm(Exec ex, SimTask next)
    {
        Cpu cpu = ex.Cpu;
        MmStruct? mm = next.Mm;
        if (mm is null)
        {
            EnterLazyTlb(cpu);
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
            _mms[cpu.ActiveMm].CpuMask.Clear(cpu.Id);
        }
        mm.CpuMask.Set(cpu.Id);
        cpu.ActiveMm = mm.Id;
        cpu.Lazy = false;
        cpu.Tlb.FlushAll();
        Trace?.TlbFlush(ex.Now, cpu.Id, next.Comm, next.Pid, -1, TlbFlushReason.FlushOnTaskSwitch);
    }

    /// <summary>enter_lazy_tlb: TLBSTATE_OK becomes TLBSTATE_LAZY; the mm stays loaded and the CPU stays in its cpumask.</summary>
    public void EnterLazyTlb(Cpu cpu)
    {
        if (cpu.ActiveMm >= 0)
        {
            cpu.Lazy = true;
        }
    }

    /// <summary>
    /// leave_mm: a lazy CPU stops borrowing its mm — it loads init_mm's page table (which drops every
    /// user entry: no PCID in 4.0) and clears itself from the mm's cpumask, so later shootdowns of
    /// that mm no longer interrupt it.
    /// </summary>
    public void LeaveMm(Cpu cpu)
    {
        if (cpu.ActiveMm >= 0)
        {
            _mms[cpu.ActiveMm].CpuMask.Clear(cpu.Id);
        }
        cpu.ActiveMm = -1;
        cpu.Lazy = false;
        cpu.Tlb.FlushAll();
    }

    // ---- flushes ---------------------------------------------------------------------------------

    /// <summary>
    /// flush_tlb_page (4.0): INVLPG here if this CPU runs the mm (a lazy kernel thread leave_mm()s
    /// instead), then one page's flush_tlb_others to every other CPU of the mm's cpumask.
    /// </summary>
    public void FlushTlbPage(Exec ex, MmStruct mm, long vpn)
    {
        Cpu cpu = ex.Cpu;
        if (cpu.ActiveMm == mm.Id)
        {
            if (!cpu.Lazy)
            {
                LocalFlushOne(ex, mm.Id, vpn);
            }
            else
            {
                LeaveMm(cpu);
                ex.Sys += ex.Costs.FullFlushNs; // leave_mm reloads CR3 with init_mm's page table
            }
        }
        if (mm.CpuMask.AnyBut(cpu.Id))
        {
            FlushTlbOthers(ex, mm.CpuMask, _info.Set(mm, vpn, vpn + 1));
        }
    }

    /// <summary>
    /// flush_tlb_mm_range (4.0): if this CPU does not run the mm, or runs it lazily (leave_mm
    /// first), the others get a full flush; otherwise up to tlb_single_page_flush_ceiling pages are
    /// INVLPG'd one by one here and the same range goes to the others, and above it everything is
    /// flushed everywhere.
    /// </summary>
    public void FlushTlbMmRange(Exec ex, MmStruct mm, long start, long end)
    {
        Cpu cpu = ex.Cpu;
        bool full = true;
        if (cpu.ActiveMm == mm.Id)
        {
            if (cpu.Lazy)
            {
                LeaveMm(cpu);
                ex.Sys += ex.Costs.FullFlushNs; // leave_mm reloads CR3
            }
            else if (end == FlushTlbInfo.FlushAll || end - start > _ceiling)
            {
                LocalFlushAll(ex, TlbFlushReason.LocalMmShootdown);
            }
            else
            {
                full = false;
                for (long v = start; v < end; v++)
                {
                    ex.Cpu.Tlb.FlushOne(mm.Id, v);
                    ex.Sys += ex.Costs.InvlpgNs;
                    _vmstat.Inc(VmEvent.nr_tlb_local_flush_one);
                }
                Trace?.TlbFlush(ex.Now, cpu.Id, ex.Task.Comm, ex.Task.Pid, end - start, TlbFlushReason.LocalMmShootdown);
            }
        }
        if (mm.CpuMask.AnyBut(cpu.Id))
        {
            FlushTlbOthers(ex, mm.CpuMask, full ? _info.Set(mm, 0, FlushTlbInfo.FlushAll) : _info.Set(mm, start, end));
        }
    }

    /// <summary>flush_tlb_mm is flush_tlb_mm_range(mm, 0, TLB_FLUSH_ALL) in 4.0.</summary>
    public void FlushTlbMm(Exec ex, MmStruct mm) => FlushTlbMmRange(ex, mm, 0, FlushTlbInfo.FlushAll);

    /// <summary>__flush_tlb_one: INVLPG here, counted as nr_tlb_local_flush_one.</summary>
    private void LocalFlushOne(Exec ex, int mm, long vpn)
    {
        ex.Cpu.Tlb.FlushOne(mm, vpn);
        ex.Sys += ex.Costs.InvlpgNs;
        _vmstat.Inc(VmEvent.nr_tlb_local_flush_one);
        Trace?.TlbFlush(ex.Now, ex.Cpu.Id, ex.Task.Comm, ex.Task.Pid, 1, TlbFlushReason.LocalShootdown);
    }

    /// <summary>local_flush_tlb (CR3 reload), counted as nr_tlb_local_flush_all.</summary>
    private void LocalFlushAll(Exec ex, TlbFlushReason reason)
    {
        ex.Cpu.Tlb.FlushAll();
        ex.Sys += ex.Costs.FullFlushNs;
        _vmstat.Inc(VmEvent.nr_tlb_local_flush_all);
        Trace?.TlbFlush(ex.Now, ex.Cpu.Id, ex.Task.Comm, ex.Task.Pid, -1, reason);
    }

    /// <summary>native_flush_tlb_others: counts nr_tlb_remote_flush, then flush_tlb_func on every other CPU of the mask.</summary>
    public void FlushTlbOthers(Exec ex, Cpumask mask, FlushTlbInfo info)
    {
        _vmstat.Inc(VmEvent.nr_tlb_remote_flush);
        // The seed's patch 1 (5b74283ab251, in 4.3): trace the sender just before the IPIs go out.
        Trace?.TlbFlush(ex.Now, ex.Cpu.Id, ex.Task.Comm, ex.Task.Pid, info.Pages, TlbFlushReason.RemoteSendIpi);
        SmpCallFunctionMany(ex, mask, _flushTlbFunc, info);
    }

    /// <summary>
    /// flush_tlb_func (4.0), the handler of flush_tlb_others: counts irq_tlb_count; ignores a request
    /// for an mm that is not its active one; otherwise counts nr_tlb_remote_flush_received and, if
    /// the mm is loaded for real, flushes the page, the range or everything — if only lazily,
    /// leave_mm()s, so it takes at most one shootdown for that mm.
    /// </summary>
    private long FlushTlbFunc(Cpu r, long t, FlushTlbInfo info)
    {
        r.TlbShootdowns++;
        if (info.FlushMm is { } mm && r.ActiveMm != mm.Id)
        {
            return 0;
        }
        _vmstat.Inc(VmEvent.nr_tlb_remote_flush_received);
        if (Trace is { } trace)
        {
            SimTask? rt = r.Current;
            trace.TlbFlush(t, r.Id, rt?.Comm ?? "<idle>", rt?.Pid ?? 0, info.Pages, TlbFlushReason.RemoteShootdown);
        }
        if (r.Lazy)
        {
            LeaveMm(r);
            return r.Costs.FullFlushNs;
        }
        if (info.IsFull)
        {
            r.Tlb.FlushAll();
            return r.Costs.FullFlushNs;
        }
        int id = info.FlushMm?.Id ?? r.ActiveMm;
        for (long v = info.Start; v < info.End; v++)
        {
            r.Tlb.FlushOne(id, v);
        }
        return (info.End - info.Start) * r.Costs.InvlpgNs;
    }

    // ---- the batched unmap flush (4.13 arch hooks) ------------------------------------------------

    public void ArchTlbbatchAddMm(TlbUnmapBatch batch, MmStruct mm) => batch.CpuMask.Or(mm.CpuMask);

    /// <summary>
    /// arch_tlbbatch_flush (4.13, e73ad5ff2f76, which moved x86's try_to_unmap_flush of 4.6+ into
    /// arch code): if this CPU is in the batch's mask, a full local flush (counted as
    /// nr_tlb_local_flush_all) whatever its lazy state; then flush_tlb_others with no mm and
    /// TLB_FLUSH_ALL, whose handler flush_tlb_func leave_mm()s on lazy CPUs. (4.3's generic
    /// try_to_unmap_flush did neither: see <see cref="Policies.Linux43"/>.)
    /// </summary>
    public void ArchTlbbatchFlush(Exec ex, TlbUnmapBatch batch)
    {
        Cpu cpu = ex.Cpu;
        if (batch.CpuMask.Test(cpu.Id))
        {
            LocalFlushAll(ex, TlbFlushReason.LocalShootdown);
        }
        if (batch.CpuMask.AnyBut(cpu.Id))
        {
            FlushTlbOthers(ex, batch.CpuMask, _info.Set(null, 0, FlushTlbInfo.FlushAll));
        }
        batch.CpuMask.ClearAll();
    }

    /// <summary>
    /// flush_tlb_local() of 4.3's asm/tlbflush.h: inc_irq_stat(irq_tlb_count) and a full local
    /// flush (CR3 reload) whatever is loaded, lazily or not. Returns its cost.
    /// </summary>
    public long FlushTlbLocal(Cpu cpu)
    {
        cpu.TlbShootdowns++;
        cpu.Tlb.FlushAll();
        return cpu.Costs.FullFlushNs;
    }

    /// <summary>
    /// __flush_tlb_single(addr): INVLPG of a linear address in whatever mm is loaded. Only an
    /// address the loaded mm maps can have an entry; the RFC hands this a PFN, which is never in the
    /// mmap area (MmStruct.MmapBase stands for 0x7f...), so that check spares most lookups.
    /// </summary>
    public long FlushLocalTlbAddr(Cpu cpu, long addr)
    {
        if (cpu.ActiveMm >= 0 && addr < MmStruct.MmapBase && _mms[cpu.ActiveMm].MayBeCached(addr))
        {
            cpu.Tlb.FlushOne(cpu.ActiveMm, addr);
        }
        return cpu.Costs.InvlpgNs;
    }

    /// <summary>
    /// Cache lines a PFN list's handler reads from the sender beyond the one the flush info is
    /// counted as: the policies that keep one (RFC v1, v6 4/4) pass the task's struct
    /// tlbflush_unmap_batch itself — a cpumask of nr_cpu_ids bits, the 8-byte count, then 8 bytes per
    /// PFN — which the sender wrote as it unmapped, and every receiver reads up to the last listed
    /// PFN: 4 more lines for 32 PFNs on 48 CPUs, 63 for a page's worth. The "mandatory" cache misses
    /// of feeding the list across CPUs (Linus Torvalds, "Re: [PATCH 0/3] TLB flush multiple pages
    /// per IPI v5", linux-mm, 10 June 2015). 0 for a flush without a list. Charged one after
    /// another, an upper bound: INVLPG serializes the handler's loop, but the hardware prefetchers
    /// can bring a later line in while the previous line's eight INVLPGs run, which the model does
    /// not model.
    /// </summary>
    private long PfnListLines(FlushTlbInfo? info)
    {
        if (info?.Pfns is null)
        {
            return 0;
        }
        long bytes = (_cpus.Length + 63) / 64 * 8 + 8 + 8L * info.NrPfns;
        return (bytes + 63) / 64 - 1;
    }

    /// <summary>
    /// smp_call_function_many(mask, func, info, wait = 1) over x86's APIC: one IPI per CPU of the
    /// mask but the sender, posted one after another; each receiver takes it when its interrupts
    /// are on (not while it spins on or holds an irq-safe lock) and runs the handler; the sender
    /// waits for the slowest acknowledgement. A busy receiver's handler time delays its next step; an
    /// idle one's only occupies it (it delays a task woken there meanwhile). A mask with one other
    /// CPU takes 4.0's fast path, smp_call_function_single: generic_exec_single sends the IPI only if
    /// the receiver's call_single_queue was empty (the lock-less queue of 6897fc22ea01, 3.14); otherwise the request waits in the queue for the
    /// interrupt already on its way, whose handler runs every request queued until it takes the
    /// queue (llist_del_all, after the interrupt's entry half and the queue head's line), each
    /// acknowledged after its own function, before the handler's exit.
    /// </summary>
    public void SmpCallFunctionMany(Exec ex, Cpumask mask, SmpCallFunc func, FlushTlbInfo info) => SmpCallFunctionMany(ex, mask, func, info, tlb: true);

    /// <summary>
    /// smp_call_function_many for any function: <paramref name="tlb"/> false for calls that are no
    /// TLB flush (drain_all_pages), which count as call-function interrupts but not as TLB IPIs.
    /// </summary>
    public void SmpCallFunctionMany(Exec ex, Cpumask mask, SmpCallFunc func, FlushTlbInfo? info, bool tlb)
    {
        Cpu sender = ex.Cpu;
        long t0 = ex.Now;
        Tracer? trace = Trace;
        long post = t0;
        Cpumask? prevTargets = _prevTargets[sender.Id];
        Cpumask curTargets = _curTargets;
        long lastAck = t0;
        int group = -1;
        int first = mask.NextSet(0);
        if (first == sender.Id)
        {
            first = mask.NextSet(first + 1);
        }
        int second = first < 0 ? -1 : mask.NextSet(first + 1);
        if (second == sender.Id)
        {
            second = mask.NextSet(second + 1);
        }
        bool single = first >= 0 && second < 0;
        long listLines = PfnListLines(info);
        for (int c = first; c >= 0; c = mask.NextSet(c + 1))
        {
            if (c == sender.Id)
            {
                continue;
            }
            Cpu r = _cpus[c];
            // Whether the sender's previous call targeted this CPU too (vanilla's reclaim unmaps the
            // pages of one reader's pagevec run one after another, an IPI to that reader each).
            bool repeat = prevTargets is not null && prevTargets.Test(c);
            curTargets.Set(c);
            // llist_add of the csd to the receiver's call_single_queue: the queue head's line comes
            // from whoever wrote it last (the receiver draining it, or another sender).
            long queued = post + Lines.Take(ref r.CallSingleQueueOwner, sender.Id);
            long latency = _ipiLatency[sender.Node * _nodes + r.Node];
            // The acknowledgement (4.0, kernel/smp.c): the receiver's handler runs the function,
            // then csd_unlock stores to the csd the sender spins on in csd_lock_wait — the way back
            // is that line's transfer, not an interrupt — and only then irq_exit and the return
            // (arch/x86/kernel/smp.c, smp_call_function_single_interrupt). Counted from the end
            // of an IPI's whole handler, the sender sees it the exit half earlier than that end.
            // A request riding on another IPI runs in the same handler's loop, after the requests
            // before it and before the handler's exit, which it pushes back: its acknowledgement
            // follows its own function, the exit half before the handler's new end.
            long back = Lines.Transfer(r.Id, sender.Id);
            if (single && r.CallQueue.CarrierAt(queued) is int carrier and >= 0)
            {
                // generic_exec_single: the queue was not empty, so no IPI — the first handler to
                // empty it after this request runs it after the ones before it (the csd and the
                // flush info read from the sender, then the function), with no entry and exit of
                // its own.
                post = queued;
                CoalescedRequests++;
                CallSingleQueue q = r.CallQueue;
                long start = q.RunEnd(carrier);
                SetHandlerCosts(r, start);
                long work = (1 + listLines) * Lines.Transfer(sender.Id, r.Id) + (func == _flushTlbFunc ? FlushTlbFunc(r, start, info!) : func(r, start, info!));
                r.SysNs += work;
                r.IrqNs += work;
                if (q.Known(carrier))
                {
                    RunQueued(r, carrier, work, start, Now);
                    trace?.Ipi(sender.Id, post, r.Id, start - IrqExitNs(r), work);
                }
                else
                {
                    // Its carrier is resolved at its arrival: so is this request, just after it
                    // (and after the requests that rode on it before).
                    q.RunEnd(carrier) = start + work;
                    group = group < 0 ? NewWaitGroup(sender.Id, ex.Task, ex.What) : group;
                    DeferIpi(group, r.Id, post, q.Drain(carrier), work, 0, back, q.Serial(carrier), single, tlb ? (int)ex.FlushCause : -1, coalesced: true, repeat);
                }
                lastAck = Math.Max(lastAck, start - IrqExitNs(r) + work + back);
                continue;
            }
            post = queued + _c.IpiSendNs;
            long delivered = post + latency;
            // Busy while its last step runs (even one that ends in sleep or exit) or while it has a
            // task to run: then the IPI waits for interrupts to be on and the handler delays the
            // CPU's next step. Idle (nothing to run, last step over): the handler runs at once
            // (after earlier ones) and only occupies the CPU. A busy receiver whose state at the
            // arrival is not simulated yet (its last computed step ends before it) is resolved by an
            // event at the arrival time, when it is (see OnIpiArrive).
            bool idle = delivered >= r.StepEnd && r.Current is null && r.RunQueue.Count == 0;
            bool deferred = !idle && delivered >= r.StepEnd && _engine is not null;
            long irqOn = idle ? delivered : r.IrqEnabledAt(delivered);
            long handled = idle ? Math.Max(delivered, r.IrqBusyUntil) : r.InterruptTakenAt(irqOn);
            if (!deferred && !idle)
            {
                CountBusyIpi(repeat, handled > delivered);
                if (handled > delivered)
                {
                    IrqOffIpis++;
                    IrqOffIpisAtSend++;
                    IrqOffDelayNs += handled - delivered;
                    CountBehindHandler(handled, irqOn);
                }
            }
            // flush_tlb_func, the common case, is called directly so the JIT can inline it.
            // The handler drains its queue (llist_del_all: the head's line back from the sender),
            // reads the csd and the flush info on the sender's stack (one more line from the
            // sender), and csd_unlock writes the csd, which the sender's csd_lock_wait re-reads. A PFN
            // list's handler also reads the rest of the sender's batch (PfnListLines).
            SetHandlerCosts(r, delivered);
            long entry = r.Costs.IrqEntryExitNs + Lines.Take(ref r.CallSingleQueueOwner, r.Id);
            long work2 = (1 + listLines) * Lines.Transfer(sender.Id, r.Id) + (func == _flushTlbFunc ? FlushTlbFunc(r, handled, info!) : func(r, handled, info!));
            long handler = entry + work2;
            long ack = handled + handler + back - IrqExitNs(r);
            if (ack > lastAck)
            {
                lastAck = ack;
            }
            int serial = ++r.IpiSerials;
            if (deferred)
            {
                // Its handling is known at its arrival; until then the queue is assumed emptied then.
                r.CallQueue.Add(serial, queued, delivered, handled + handler, known: false, idle: false, Now);
                // The step goes on as if the receiver took the IPI on arrival; the event charges the
                // sender whatever longer wait the receiver's interrupts-off time causes.
                group = group < 0 ? NewWaitGroup(sender.Id, ex.Task, ex.What) : group;
                DeferIpi(group, r.Id, queued, delivered, work2, entry, back, serial, single, tlb ? (int)ex.FlushCause : -1, coalesced: false, repeat);
            }
            else
            {
                r.CallQueue.Add(serial, queued, handled + entry - IrqExitNs(r), handled + handler, known: true, idle, Now);
                if (idle)
                {
                    r.IrqBusyUntil = handled + handler;
                }
                else
                {
                    r.NoteHandler(handled, handled + handler, Now);
                    r.IrqDebtNs += handler;
                    ChargeInterrupted(r, handler);
                }
                trace?.Ipi(sender.Id, post, r.Id, handled, handler);
            }
            r.SysNs += handler;
            r.IrqNs += handler;
            CountIpi(r, delivered, tlb ? (int)ex.FlushCause : -1, 1);
        }
        // This call's targets become the sender's previous ones; the old set is the next scratch.
        _prevTargets[sender.Id] = curTargets;
        _curTargets = prevTargets ?? new Cpumask(_cpus.Length);
        _curTargets.ClearAll();
        long wait = Math.Max(lastAck, post) - t0;
        ex.Sys += wait;
        ex.IpiWait += wait;
        if (group >= 0)
        {
            _groups[group].StepAck = Math.Max(lastAck, post);
        }
    }

    /// <summary>Counts (or, with -1, uncounts) a call-function interrupt on <paramref name="r"/> arriving at <paramref name="delivered"/>; <paramref name="cause"/> is the TLB flush's cause, or -1 for a call that is no TLB flush.</summary>
    private void CountIpi(Cpu r, long delivered, int cause, int n)
    {
        r.CallFunctionIrqs += n;
        _series.Add(Series.Interrupts, delivered, n);
        if (cause >= 0)
        {
            IpisByCause[cause] += n;
            _series.Add(Series.TlbIpis, delivered, n);
        }
        else
        {
            r.OtherCallFunctionIrqs += n;
        }
    }

    /// <summary>Runs <paramref name="work"/> of a request in the handler of the receiver's known IPI at <paramref name="carrier"/> in its queue, from <paramref name="start"/> (<paramref name="now"/>: the simulation's current time).</summary>
    private static void RunQueued(Cpu r, int carrier, long work, long start, long now)
    {
        long end = start + work;
        ref long runEnd = ref r.CallQueue.RunEnd(carrier);
        runEnd = Math.Max(runEnd, end);
        if (r.CallQueue.Idle(carrier))
        {
            r.IrqBusyUntil = Math.Max(r.IrqBusyUntil, end);
        }
        else
        {
            r.IrqDebtNs += work;
            ChargeInterrupted(r, work);
            r.NoteHandler(start, end, now);
        }
    }

    /// <summary>Handler time of an interrupt a busy CPU took: the task running there pays it as system time (4.0's tick accounting charges hardirq time to the interrupted task's stime).</summary>
    private static void ChargeInterrupted(Cpu r, long ns)
    {
        if (r.Current is { } t)
        {
            t.SysNs += ns;
        }
    }

    /// <summary>Requests that found their receiver's call_single_queue pending and so sent no IPI (generic_exec_single).</summary>
    public long CoalescedRequests { get; private set; }

    // ---- IPIs resolved at their arrival --------------------------------------------------------------

    /// <summary>One IPI (or a request riding on one) whose receiver's state at arrival was unknown when it was sent.</summary>
    private struct PendingIpi : IFreeListed
    {
        public int Group;
        public int Receiver;
        public long Post;
        /// <summary>The request's own work in the handler: reading the csd and info, the function.</summary>
        public long Work;
        /// <summary>Interrupt entry and exit and the queue drain (0 for a request riding on another IPI).</summary>
        public long Entry;
        /// <summary>
        /// The csd line's transfer back to the sender: from the end of the request's function when
        /// it rides on another IPI, from the end of its own handler less the exit half otherwise.
        /// </summary>
        public long Back;
        /// <summary>The IPI's serial on its receiver, or the one it rides on.</summary>
        public int Serial;
        /// <summary>A request to one CPU (generic_exec_single: it sends no IPI if the queue is not empty).</summary>
        public bool Single;
        /// <summary>A request riding on another IPI (no interrupt of its own).</summary>
        public bool Coalesced;
        /// <summary>The TLB flush's cause, or -1 for a call that is no TLB flush.</summary>
        public int Cause;
        /// <summary>The sender's previous call targeted the same receiver.</summary>
        public bool Repeat;
        /// <summary>The constants its handler was charged at when it was sent (the receiver's at the delivery, as the sender's step saw it); its arrival keeps them.</summary>
        public CostModel Costs;
        public int NextFree;

        readonly int IFreeListed.NextFree => NextFree;
    }

    /// <summary>The deferred IPIs of one smp_call_function_many call: the sender waits for the last acknowledgement.</summary>
    private struct WaitGroup : IFreeListed
    {
        public int Sender;
        /// <summary>The sender's task (whose rusage the wait goes to).</summary>
        public SimTask? Task;
        public string What;
        /// <summary>When the sender's step took its wait to end (every receiver taking the IPI on arrival).</summary>
        public long StepAck;
        /// <summary>The latest acknowledgement of the deferred IPIs resolved so far.</summary>
        public long Ack;
        public int Remaining;
        public int NextFree;

        readonly int IFreeListed.NextFree => NextFree;
    }

    private PendingIpi[] _pending = new PendingIpi[64];
    private int _pendingUsed;
    private int _pendingFree = -1;
    private WaitGroup[] _groups = new WaitGroup[64];
    private int _groupsUsed;
    private int _groupsFree = -1;
    private Engine.Engine? _engine;

    /// <summary>The simulation's current time: no interrupt is resolved before it (without an engine, as in unit tests, every time is still to come).</summary>
    private long Now => _engine?.Now ?? long.MinValue;
    private Action<Cpu, SimTask?, string, long>? _chargeLateWait;

    /// <summary>IPIs sent to a busy CPU whose state at their arrival was not simulated yet.</summary>
    public long DeferredIpis { get; private set; }

    /// <summary>Of <see cref="DeferredIpis"/>, those that found the receiver with interrupts off.</summary>
    public long DeferredIpisIrqOff { get; private set; }

    /// <summary>IPIs (however resolved) that reached a busy receiver with interrupts off.</summary>
    public long IrqOffIpis { get; private set; }

    /// <summary>Of <see cref="IrqOffIpis"/>, those whose receiver's state was known at the send.</summary>
    public long IrqOffIpisAtSend { get; private set; }

    /// <summary>Their handlers' total wait for the receivers' interrupts to come on, summed over receivers.</summary>
    public long IrqOffDelayNs { get; private set; }

    /// <summary>Of <see cref="IrqOffIpis"/>, those whose wait ended with the return of another handler running on the receiver (not with the end of an interrupts-off section of its work).</summary>
    public long BehindHandlerIpis { get; private set; }

    /// <summary>The part of <see cref="IrqOffDelayNs"/> spent waiting for other handlers to return.</summary>
    public long BehindHandlerDelayNs { get; private set; }

    private void CountBehindHandler(long handled, long irqOn)
    {
        if (handled > irqOn)
        {
            BehindHandlerIpis++;
            BehindHandlerDelayNs += handled - irqOn;
        }
    }

    /// <summary>IPIs (however resolved) that reached a busy receiver, interrupts on or off.</summary>
    public long BusyIpis { get; private set; }

    /// <summary>Of <see cref="BusyIpis"/>, those to a CPU the sender's previous call also targeted.</summary>
    public long BusyIpisRepeat { get; private set; }

    /// <summary>Of <see cref="IrqOffIpis"/>, those to a CPU the sender's previous call also targeted.</summary>
    public long IrqOffIpisRepeat { get; private set; }

    /// <summary>Counts an IPI that reached a busy receiver.</summary>
    private void CountBusyIpi(bool repeat, bool irqOff)
    {
        BusyIpis++;
        if (repeat)
        {
            BusyIpisRepeat++;
            if (irqOff)
            {
                IrqOffIpisRepeat++;
            }
        }
    }

    /// <summary>Sender wait beyond what the senders' steps assumed, in total.</summary>
    public long LateWaitNs { get; private set; }

    /// <summary>
    /// Lets IPIs to busy CPUs whose state at arrival is not yet known be resolved by an event at
    /// the arrival; <paramref name="chargeLateWait"/> charges a sender (CPU, step label, ns) the
    /// part of its wait its step did not assume. Without this (unit tests driving one call), such
    /// a receiver is taken to have interrupts on.
    /// </summary>
    public void ResolveArrivalsWith(Engine.Engine engine, Action<Cpu, SimTask?, string, long> chargeLateWait)
    {
        _engine = engine;
        _chargeLateWait = chargeLateWait;
        engine.On(Engine.EventKind.IpiArrive, OnIpiArrive);
    }

    /// <summary>A pooled slot's link to the next free one.</summary>
    private interface IFreeListed
    {
        int NextFree { get; }
    }

    /// <summary>A free slot of <paramref name="slots"/>: the head of its free list, or a new one (the array doubles when full).</summary>
    private static int Rent<T>(ref T[] slots, ref int used, ref int free)
        where T : struct, IFreeListed
    {
        if (free >= 0)
        {
            int s = free;
            free = slots[s].NextFree;
            return s;
        }
        if (used == slots.Length)
        {
            Array.Resize(ref slots, used * 2);
        }
        return used++;
    }

    private int NewWaitGroup(int sender, SimTask task, string what)
    {
        int g = Rent(ref _groups, ref _groupsUsed, ref _groupsFree);
        _groups[g] = new WaitGroup { Sender = sender, Task = task, What = what, Ack = 0, Remaining = 0, NextFree = -1 };
        return g;
    }

    private void DeferIpi(int group, int receiver, long post, long delivered, long work, long entry, long back, int serial, bool single, int cause, bool coalesced, bool repeat)
    {
        int i = Rent(ref _pending, ref _pendingUsed, ref _pendingFree);
        _pending[i] = new PendingIpi { Group = group, Receiver = receiver, Post = post, Work = work, Entry = entry, Back = back, Serial = serial, Single = single, Cause = cause, Coalesced = coalesced, Repeat = repeat, Costs = _cpus[receiver].Costs, NextFree = -1 };
        _groups[group].Remaining++;
        if (!coalesced)
        {
            DeferredIpis++;
        }
        if (single)
        {
            _cpus[receiver].CallQueue.AwaitCheck(post);
        }
        _engine!.Schedule(delivered, Engine.EventKind.IpiArrive, i);
    }

    /// <summary>Requests found, at an arrival, to have been queued behind an IPI still on its way, and so resolved again at that IPI's arrival.</summary>
    public long RedeferredRequests { get; private set; }

    /// <summary>A deferred request that sent its own IPI turned out to have found the queue holding something: no IPI was sent, and no handler entry and exit run for it.</summary>
    private void Unsend(Cpu r, PendingIpi p, long delivered)
    {
        CountIpi(r, delivered, p.Cause, -1);
        CoalescedRequests++;
        DeferredIpis--;
        r.SysNs -= p.Entry;
        r.IrqNs -= p.Entry;
    }

    /// <summary>
    /// The arrival of a deferred IPI: every step that began by now has been simulated, so the
    /// receiver's state is known — idle, or busy with interrupts on or off. It takes the IPI when
    /// they are on; once every deferred IPI of a call is acknowledged, the sender is charged the
    /// wait beyond the one its step assumed (it spins in csd_lock_wait: system time that delays
    /// its next step).
    /// </summary>
    private void OnIpiArrive(long delivered, int i)
    {
        PendingIpi p = _pending[i];
        Cpu r = _cpus[p.Receiver];
        r.Costs = p.Costs; // one handler, one speed: its entry and work were charged at these
        CallSingleQueue q = r.CallQueue;
        // A request to one CPU: whether the queue held something when it was queued, now that
        // every handler resolved by now is known, and if so which handler runs it (its own IPI, if
        // it sent one, set aside).
        int carrier = p.Single ? q.CarrierAt(p.Post, p.Coalesced ? 0 : p.Serial) : -1;
        if (carrier >= 0 && !q.Known(carrier))
        {
            // Queued behind an IPI still on its way, one simulated after this request was (senders'
            // steps are simulated one after another, not in time order): it rides on that IPI and
            // is resolved just after it.
            int onto = q.Serial(carrier);
            if (!p.Coalesced)
            {
                Unsend(r, p, delivered);
                q.RemoveAt(q.IndexOf(p.Serial));
                carrier = q.IndexOf(onto);
            }
            q.RunEnd(carrier) += p.Work;
            _pending[i].Serial = onto;
            _pending[i].Coalesced = true;
            _pending[i].Entry = 0;
            RedeferredRequests++;
            _engine!.Schedule(q.Drain(carrier), Engine.EventKind.IpiArrive, i);
            return;
        }
        _pending[i].NextFree = _pendingFree;
        _pendingFree = i;
        if (p.Single)
        {
            q.Checked(p.Post);
        }
        long start, end;
        bool rode = carrier >= 0;
        if (rode)
        {
            // Queued while the queue still held an earlier request (that one's handler, resolved by
            // now, empties the queue later than this one was queued): generic_exec_single sent no
            // IPI, and that handler runs this request after the ones before it. (A request known
            // to ride on an IPI arriving at the same instant comes here just after that IPI was
            // resolved.)
            if (!p.Coalesced)
            {
                int onto = q.Serial(carrier);
                Unsend(r, p, delivered);
                q.RemoveAt(q.IndexOf(p.Serial));
                carrier = q.IndexOf(onto);
            }
            start = q.RunEnd(carrier);
            end = start + p.Work;
            RunQueued(r, carrier, p.Work, start, delivered);
        }
        else
        {
            bool idle = delivered >= r.StepEnd && r.Current is null && r.RunQueue.Count == 0;
            long irqOn = idle ? delivered : r.IrqEnabledAt(delivered);
            long handled = idle ? Math.Max(delivered, r.IrqBusyUntil) : r.InterruptTakenAt(irqOn);
            long entry = p.Entry;
            start = handled;
            if (p.Coalesced)
            {
                // Every request before it was taken by a handler that emptied the queue before this
                // one was queued (its carrier, resolved first, found so): the queue was empty, and
                // generic_exec_single sent this request its own IPI.
                CoalescedRequests--;
                DeferredIpis++;
                CountIpi(r, delivered, p.Cause, 1);
                entry = r.Costs.IrqEntryExitNs;
                r.SysNs += entry;
                r.IrqNs += entry;
                end = start + p.Work + entry;
                q.Add(++r.IpiSerials, p.Post, handled + entry - IrqExitNs(r), end, known: true, idle, delivered);
            }
            else
            {
                end = start + p.Work + entry;
                int own = q.IndexOf(p.Serial);
                if (own < 0)
                {
                    throw new InvalidOperationException($"IPI {p.Serial} to CPU {r.Id} arrived but its receiver's queue does not remember it.");
                }
                q.Resolve(own, handled + entry - IrqExitNs(r), end, idle);
            }
            if (!idle)
            {
                r.NoteHandler(start, end, delivered);
                CountBusyIpi(p.Repeat, handled > delivered);
                if (handled > delivered)
                {
                    DeferredIpisIrqOff++;
                    IrqOffIpis++;
                    IrqOffDelayNs += handled - delivered;
                    CountBehindHandler(handled, irqOn);
                }
            }
            if (idle)
            {
                r.IrqBusyUntil = Math.Max(r.IrqBusyUntil, end);
            }
            else
            {
                r.IrqDebtNs += p.Work + entry;
                ChargeInterrupted(r, p.Work + entry);
            }
        }
        Trace?.Ipi(_groups[p.Group].Sender, p.Post, r.Id, rode ? start - IrqExitNs(r) : start, end - start);
        ref WaitGroup g = ref _groups[p.Group];
        g.Ack = Math.Max(g.Ack, end + p.Back - IrqExitNs(r));
        if (--g.Remaining == 0)
        {
            // The sender's calls follow one another: a late acknowledgement of one delays the
            // next ones too, so each is charged only the part of its late wait that the sender
            // has not already been charged (the union of the late intervals, per sender).
            Cpu sender = _cpus[g.Sender];
            long late = g.Ack - Math.Max(g.StepAck, sender.LateAckUntil);
            if (g.Ack > sender.LateAckUntil)
            {
                sender.LateAckUntil = g.Ack;
            }
            if (late > 0)
            {
                LateWaitNs += late;
                _chargeLateWait!(sender, g.Task, g.What, late);
            }
            g.What = null!;
            g.Task = null;
            g.NextFree = _groupsFree;
            _groupsFree = p.Group;
        }
    }
}
