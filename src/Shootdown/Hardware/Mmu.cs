using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Hardware;

/// <summary>
/// The CPU's memory management unit: a user access looks up the TLB; a miss walks the page table
/// (paying <see cref="CostModel.PageWalkNs"/>), sets the PTE's accessed bit (and dirty bit for a
/// write) and fills the TLB. A hit does not touch the PTE — which is why a page hot in some TLB
/// can look idle to reclaim. A write through a cached entry whose dirty bit is clear re-walks.
/// </summary>
public sealed class Mmu(Sim sim)
{
    /// <summary>Result of an access.</summary>
    public enum Access
    {
        Hit,
        Filled,
        /// <summary>The page table has no usable entry: the access faults.</summary>
        Fault,
    }

    public Access Touch(Exec ex, MmStruct mm, long vpn, bool write)
    {
        Tlb tlb = ex.Cpu.Tlb;
        int slot = tlb.LookupOrVictim(mm.Id, vpn, out int victim);
        if (slot >= 0)
        {
            byte fl = tlb.FlagsAt(slot);
            if (!write || (fl & Tlb.EntryDirty) != 0)
            {
                if (sim.Oracle is { } oracle)
                {
                    int frame = tlb.FrameAt(slot);
                    bool stale = false;
                    if (tlb.EpochAt(slot) != mm.PteEpoch)
                    {
                        stale = oracle.CheckHit(ex, mm, vpn, frame, write, (fl & Tlb.EntryWritable) != 0);
                        if (!stale)
                        {
                            tlb.SetEpochAt(slot, mm.PteEpoch);
                        }
                    }
                    if (write)
                    {
                        oracle.Store(ex, mm, vpn, frame, stale);
                    }
                }
                return Access.Hit;
            }
            if ((fl & Tlb.EntryWritable) == 0)
            {
                return Access.Fault;
            }
            // A write through a clean entry: the CPU re-walks to set the dirty bit.
        }
        ex.User += sim.Costs.PageWalkNs;
        uint pte = mm.PageTable.Get(vpn);
        if (!Pte.IsPresent(pte) || (write && !Pte.IsWrite(pte)))
        {
            if (slot >= 0)
            {
                tlb.FlushOne(mm.Id, vpn);
            }
            return Access.Fault;
        }
        uint np = pte | Pte.Accessed | (write ? Pte.Dirty : 0);
        if (np != pte)
        {
            mm.PageTable.Update(vpn, np);
            sim.Memory.PteWritten(Pte.Frame(np), ex.Cpu.Id, sim.Lines); // the walker's locked write of the accessed/dirty bit
        }
        byte flags = (byte)((Pte.IsWrite(np) ? Tlb.EntryWritable : 0) | (Pte.IsDirty(np) ? Tlb.EntryDirty : 0));
        if (slot >= 0)
        {
            tlb.SetFlagsAt(slot, flags);
            tlb.SetEpochAt(slot, mm.PteEpoch);
        }
        else
        {
            tlb.FillAt(victim, mm.Id, vpn, Pte.Frame(np), flags, mm.PteEpoch);
        }
        if (write)
        {
            sim.Oracle?.Store(ex, mm, vpn, Pte.Frame(np), stale: false);
        }
        return Access.Filled;
    }
}
