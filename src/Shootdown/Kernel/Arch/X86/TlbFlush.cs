using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Kernel.Arch.X86;

/// <summary>
/// arch/x86/mm/tlb.c of Linux 4.0: flush_tlb_page, flush_tlb_mm_range, flush_tlb_others and the
/// receiver's flush_tlb_func, plus leave_mm for CPUs in lazy TLB mode.
/// An IPI costs the sender one APIC write per target and a synchronous wait for the slowest
/// acknowledgement; each receiver pays interrupt entry/exit plus its flush, which delays whatever
/// it was running. Counters: nr_tlb_remote_flush once per flush_tlb_others call,
/// nr_tlb_remote_flush_received and "TLB shootdowns" once per receiver.
/// </summary>
public sealed class TlbFlush(Sim sim)
{
    private readonly CostModel _c = sim.Costs;

    /// <summary>flush_tlb_page(vma, addr): what ptep_clear_flush does after clearing a PTE in 4.0.</summary>
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
            }
        }
        if (mm.CpuMask.AnyBut(cpu.Id))
        {
            FlushTlbOthers(ex, mm.CpuMask, mm.Id, null, 1, vpn, full: false);
        }
    }

    /// <summary>
    /// flush_tlb_mm_range: up to the single-page ceiling, INVLPG per page; above it, a full flush.
    /// </summary>
    public void FlushTlbMmRange(Exec ex, MmStruct mm, long startVpn, long endVpn, int ceiling)
    {
        Cpu cpu = ex.Cpu;
        long n = endVpn - startVpn;
        bool full = n > ceiling;
        if (cpu.ActiveMm == mm.Id)
        {
            if (cpu.Lazy)
            {
                LeaveMm(cpu);
            }
            else if (full)
            {
                LocalFlushAll(ex);
            }
            else
            {
                for (long v = startVpn; v < endVpn; v++)
                {
                    LocalFlushOne(ex, mm.Id, v);
                }
            }
        }
        if (mm.CpuMask.AnyBut(cpu.Id))
        {
            FlushTlbOthers(ex, mm.CpuMask, mm.Id, null, (int)Math.Min(n, int.MaxValue), startVpn, full);
        }
    }

    public void LocalFlushOne(Exec ex, int mm, long vpn)
    {
        ex.Cpu.Tlb.FlushOne(mm, vpn);
        ex.Sys += _c.InvlpgNs;
        sim.VmStat.Inc(VmEvent.nr_tlb_local_flush_one);
        sim.Trace?.TlbFlush(ex.Now, ex.Cpu.Id, ex.Task.Comm, ex.Task.Pid, 1, TlbFlushReason.LocalShootdown);
    }

    public void LocalFlushAll(Exec ex)
    {
        ex.Cpu.Tlb.FlushAll();
        ex.Sys += _c.FullFlushNs;
        sim.VmStat.Inc(VmEvent.nr_tlb_local_flush_all);
        sim.Trace?.TlbFlush(ex.Now, ex.Cpu.Id, ex.Task.Comm, ex.Task.Pid, -1, TlbFlushReason.LocalMmShootdown);
    }

    /// <summary>
    /// leave_mm: a lazy CPU asked to flush an mm it only borrows stops borrowing it (switches to
    /// init_mm, which reloads CR3 and so drops every user entry) and leaves its mm_cpumask.
    /// </summary>
    public void LeaveMm(Cpu cpu)
    {
        if (cpu.ActiveMm >= 0)
        {
            sim.Mms[cpu.ActiveMm].CpuMask.Clear(cpu.Id);
        }
        cpu.ActiveMm = -1;
        cpu.Lazy = false;
        cpu.Tlb.FlushAll();
    }

    /// <summary>
    /// flush_tlb_others: one IPI to every CPU in <paramref name="mask"/> except the sender, then
    /// wait for all acknowledgements. The receivers flush a range of one mm (<paramref name="mm"/>,
    /// <paramref name="startVpn"/>, <paramref name="count"/>; <paramref name="mm"/> = -1: whatever
    /// mm the receiver runs), or everything (<paramref name="full"/>), or run the RFC's
    /// percpu_flush_tlb_batch_pages over <paramref name="pfns"/> (see <see cref="FlushTlbFunc"/>).
    /// </summary>
    public void FlushTlbOthers(Exec ex, Cpumask mask, int mm, int[]? pfns, int count, long startVpn, bool full)
    {
        Cpu sender = ex.Cpu;
        sim.VmStat.Inc(VmEvent.nr_tlb_remote_flush);
        long t0 = ex.Now;
        Tracer? trace = sim.Trace;
        trace?.TlbFlush(t0, sender.Id, ex.Task.Comm, ex.Task.Pid, full ? -1 : count, TlbFlushReason.RemoteSendIpi);
        long post = t0;
        long lastAck = t0;
        Cpu[] cpus = sim.Cpus;
        for (int c = mask.NextSet(0); c >= 0; c = mask.NextSet(c + 1))
        {
            if (c == sender.Id)
            {
                continue;
            }
            Cpu r = cpus[c];
            post += _c.IpiSendNs;
            long latency = r.Node == sender.Node ? _c.IpiLatencySameNodeNs : _c.IpiLatencyRemoteNodeNs;
            long delivered = post + latency;
            // A receiver spinning on or holding an irq-safe lock takes the IPI only when it is done.
            long handled = r.IrqEnabledAt(delivered);
            long handler = _c.IrqEntryExitNs + FlushTlbFunc(r, mm, pfns, count, startVpn, full);
            long ack = handled + handler + latency;
            if (ack > lastAck)
            {
                lastAck = ack;
            }
            r.IrqDebtNs += handler;
            r.SysNs += handler;
            r.IrqNs += handler;
            r.TlbShootdowns++;
            sim.VmStat.Inc(VmEvent.nr_tlb_remote_flush_received);
            sim.Series.Add(Series.Interrupts, delivered, 1);
            sim.Series.Add(Series.TlbIpis, delivered, 1);
            if (trace is not null)
            {
                SimTask? rt = r.Current;
                trace.TlbFlush(handled, r.Id, rt?.Comm ?? "<idle>", rt?.Pid ?? 0, full ? -1 : count, TlbFlushReason.RemoteShootdown);
                trace.Ipi(sender.Id, post, r.Id, handled, handler);
            }
        }
        long wait = Math.Max(lastAck, post) - t0;
        ex.Sys += wait;
        ex.IpiWait += wait;
    }

    /// <summary>
    /// flush_tlb_func on the receiving CPU; returns the flush's cost. With <paramref name="pfns"/>,
    /// the handler of the RFC v1 (April 2015, patch 2 "mm: Send a single IPI to TLB flush multiple
    /// pages when unmapping", mm/rmap.c percpu_flush_tlb_batch_pages) instead, as posted: it does
    /// INVLPG of <c>pfn &lt;&lt; PAGE_SHIFT</c> for each listed page (flush_local_tlb_addr is
    /// __flush_tlb_one). INVLPG takes a linear address, so each one invalidates whatever
    /// translation the receiver's loaded address space has at the linear address equal to the
    /// page's physical address (virtual page number = PFN, which can only be below the mmap area),
    /// not the user mapping that was cleared; and it has no lazy-TLB (leave_mm) check.
    /// </summary>
    private long FlushTlbFunc(Cpu r, int mm, int[]? pfns, int count, long startVpn, bool full)
    {
        if (pfns is not null)
        {
            // Only an address the loaded mm maps can have an entry to drop, and a physical address
            // never reaches the mmap area (MmStruct.MmapBase stands for 0x7f...); checking that first
            // spares a TLB set lookup for most PFNs (the cost charged is the same).
            if (r.ActiveMm >= 0)
            {
                MmStruct loaded = sim.Mms[r.ActiveMm];
                for (int i = 0; i < count; i++)
                {
                    int pfn = pfns[i];
                    if (pfn < MmStruct.MmapBase && loaded.MayBeCached(pfn))
                    {
                        r.Tlb.FlushOne(r.ActiveMm, pfn);
                    }
                }
            }
            return count * _c.InvlpgNs;
        }
        if (mm >= 0 && r.ActiveMm != mm)
        {
            return 0;
        }
        if (r.Lazy)
        {
            LeaveMm(r);
            return _c.FullFlushNs;
        }
        if (full)
        {
            r.Tlb.FlushAll();
            return _c.FullFlushNs;
        }
        for (int i = 0; i < count; i++)
        {
            r.Tlb.FlushOne(mm, startVpn + i);
        }
        return count * _c.InvlpgNs;
    }
}
