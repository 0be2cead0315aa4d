using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/filemap.c: the page cache side of a file mapping's faults. Missing pages are read in (for a
/// sparse file's holes: allocated, zero-filled, added to the page cache and the LRU through the
/// pagevec) — by readahead or read-around (<see cref="Readahead"/>, <see cref="Fault"/>) or, on a
/// file without readahead, the fault-around window's — and filemap_map_pages maps cached pages:
/// Linux 4.0 maps up to 16 neighbouring pages per fault (fault_around_bytes = 64 KiB, commit
/// 8c6e50b0290c).
/// </summary>
public sealed class Filemap(Sim sim)
{
    public int CountMissing(AddressSpace file, long from, long to)
    {
        int n = 0;
        for (long i = from; i < to; i++)
        {
            if (file.PageCache.Get(i) == 0)
            {
                n++;
            }
        }
        return n;
    }

    /// <summary>
    /// add_to_page_cache_lru for each missing index, using up to <paramref name="count"/> already
    /// allocated frames; returns how many it used (fewer than allocated if another task added some
    /// meanwhile).
    /// </summary>
    public int AddMissingPages(Exec ex, AddressSpace file, long from, long to, int[] frames, int count)
    {
        int k = 0;
        AddMissingPages(ex, file, ref from, to, frames, ref k, count, stopAtDrain: false);
        return k;
    }

    /// <summary>
    /// add_to_page_cache_lru for each missing index of [<paramref name="from"/>, <paramref name="to"/>)
    /// with frames[<paramref name="k"/>..<paramref name="count"/>), advancing both. With
    /// <paramref name="stopAtDrain"/> it stops after a page whose lru_cache_add drained this CPU's
    /// pagevec onto the LRU while frames remain: read_pages holds no lock from one page to the next,
    /// so another CPU's drain may reach the LRU between two of this CPU's, and the caller ends the
    /// step there (a sync point) before going on. Returns true when the range or the frames are used up.
    /// </summary>
    public bool AddMissingPages(Exec ex, AddressSpace file, ref long from, long to, int[] frames, ref int k, int count, bool stopAtDrain)
    {
        Memory mem = sim.Memory;
        for (; from < to; from++)
        {
            long i = from;
            if (file.PageCache.Get(i) != 0)
            {
                continue;
            }
            if (k == count)
            {
                return true; // more went missing meanwhile than were allocated: they fault again later
            }
            int f = frames[k++];
            mem.Pages[f].Mapping = file.Id;
            mem.Pages[f].Index = i;
            mem.Pages[f].Flags = PageFlags.Uptodate;
            // The filesystem's readpage of a hole: block-map lookup, then clear_page of the frame,
            // on whichever node the allocator found it.
            ex.Sys += sim.Costs.ReadpageHoleNs + sim.Lines.ClearPage(ex.Costs, ex.Cpu.Node, mem.NodeOf(f));
            ex.TakeLine(ref mem.Pages[f], mem.NodeOf(f));
            // __add_to_page_cache_locked: the radix-tree insert and NR_FILE_PAGES, under tree_lock.
            ex.LockHold(file.TreeLock, sim.Costs.PageCacheInsertNs + sim.ZoneStats.Inc(ex.Cpu.Id, mem.ZoneOf(f).Index, ZoneStatItem.NrFilePages));
            sim.Workingset.PageInserting(ex, file, i);
            file.PageCache.Set(i, (uint)(f + 1));
            sim.Oracle?.PageRead(f, file.Id, i);
            if (sim.Swap.LruCacheAdd(ex, f) && stopAtDrain && k < count)
            {
                from++;
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// do_generic_file_read's work on one cached page of a read(2) (the system call itself is
    /// <see cref="Hardware.CostModel.ReadSyscallNs"/>, charged by the caller): a reference on the
    /// struct page, mark_page_accessed — a page read once is left PG_referenced on the inactive
    /// list, so reclaim frees it at its first scan (page_check_references: PAGEREF_RECLAIM_CLEAN) —
    /// and copy_page_to_iter into the user's buffer.
    /// </summary>
    public void CopyPageToUser(Exec ex, int frame)
    {
        Memory mem = sim.Memory;
        ex.TakeLine(ref mem.Pages[frame], mem.NodeOf(frame));
        sim.Swap.MarkPageAccessed(ex, frame);
        ex.Sys += sim.Costs.CopyToUserPageNs;
    }

    /// <summary>
    /// filemap_map_pages: installs PTEs for the cached pages of [from, to). x86 user protections
    /// include _PAGE_ACCESSED, so a new PTE is young; it is writable only for a write fault on a
    /// shared writable mapping.
    /// </summary>
    public int MapPages(Exec ex, Vma vma, long from, long to, bool write) => MapPages(ex, vma, from, to, write ? from : -1);

    /// <summary>
    /// filemap_map_pages plus the faulting page: every cached page of [from, to) gets a young,
    /// read-only PTE, except <paramref name="writeIndex"/>, which a write fault on a shared writable
    /// mapping maps writable and dirty (do_shared_fault: page_mkwrite, set_page_dirty).
    /// filemap_map_pages skips a page marked PG_readahead (the fault on it must reach
    /// filemap_fault, which starts the next readahead window); the faulting page itself
    /// (<paramref name="writeIndex"/> or <paramref name="faultIndex"/>, do_set_pte) is mapped
    /// whatever its flags.
    /// </summary>
    public int MapPages(Exec ex, Vma vma, long from, long to, long writeIndex, long faultIndex = -1)
    {
        // One page-table page at a time, under its PTE lock (do_fault_around's window lies in one
        // page-table page; a longer range is split at their boundaries).
        int mapped = 0;
        while (from < to)
        {
            long vpn = vma.VpnOf(from);
            long end = vpn < 0 ? to : Math.Min(to, from + (RadixMap.LeafSize - (vpn & (RadixMap.LeafSize - 1))));
            long t0 = ex.Now;
            int n = MapRange(ex, vma, from, end, writeIndex, faultIndex);
            if (vpn >= 0 && vma.Mm.PageTable.LeafLive(vpn))
            {
                ex.LockAround(vma.Mm.Ptl(vpn), t0);
            }
            mapped += n;
            from = end;
        }
        return mapped;
    }

    private int MapRange(Exec ex, Vma vma, long from, long to, long writeIndex, long faultIndex)
    {
        Memory mem = sim.Memory;
        AddressSpace file = vma.File!;
        MmStruct mm = vma.Mm;
        int mapped = 0;
        for (long i = from; i < to; i++)
        {
            long vpn = vma.VpnOf(i);
            if (vpn < 0 || mm.PageTable.Get(vpn) != 0) // mapped, PROT_NONE or a migration entry
            {
                continue;
            }
            int f = file.FindPage(i);
            if (f < 0 || ((mem.Pages[f].Flags & PageFlags.Readahead) != 0 && i != writeIndex && i != faultIndex))
            {
                continue;
            }
            uint flags = Pte.Present | Pte.Accessed;
            if (i == writeIndex && vma.Writable && vma.Shared)
            {
                flags |= Pte.Write | Pte.Dirty;
                sim.Writeback.SetPageDirty(f);
            }
            mm.PageTable.Set(vpn, Pte.Make(f, flags));
            ex.TakeLine(ref mem.Pages[f], mem.NodeOf(f)); // page_add_file_rmap
            mem.PteWritten(f, ex.Cpu.Id, sim.Lines);
            if (mem.Pages[f].MapCount++ == 0)
            {
                ex.Sys += sim.ZoneStats.Inc(ex.Cpu.Id, mem.ZoneOf(f).Index, ZoneStatItem.NrFileMapped);
            }
            mm.RssFile++;
            mapped++;
        }
        ex.Sys += mapped * sim.Costs.MapPtePerPageNs;
        if (mm.PageTableNode < 0)
        {
            mm.PageTableNode = ex.Cpu.Node;
        }
        return mapped;
    }

    /// <summary>
    /// do_wp_page for a shared file mapping: a store to a present read-only PTE of a writable VMA
    /// makes it writable and dirty (page_mkwrite, set_page_dirty). Returns false if the VMA is not
    /// writable (the store gets SIGSEGV).
    /// </summary>
    public bool WpPage(Exec ex, Vma vma, long vpn)
    {
        if (!vma.Writable)
        {
            return false;
        }
        MmStruct mm = vma.Mm;
        uint pte = mm.PageTable.Get(vpn);
        ex.Sys += sim.Costs.FaultEntryNs;
        sim.VmStat.Inc(Observe.VmEvent.pgfault);
        long t0 = ex.Now;
        mm.PageTable.Update(vpn, pte | Pte.Write | Pte.Dirty | Pte.Accessed);
        sim.Memory.PteWritten(Pte.Frame(pte), ex.Cpu.Id, sim.Lines);
        sim.Writeback.SetPageDirty(Pte.Frame(pte));
        ex.Cpu.Tlb.FlushOne(mm.Id, vpn); // the faulting access dropped the read-only entry
        ex.LockAround(mm.Ptl(vpn), t0); // handle_pte_fault holds the PTE lock through do_wp_page
        return true;
    }
}
