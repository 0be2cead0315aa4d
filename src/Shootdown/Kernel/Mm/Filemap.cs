using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/filemap.c: the read fault of a file mapping. The missing pages of the fault-around window are
/// read in (for a sparse file's holes: allocated, zero-filled, added to the page cache and the LRU
/// through the pagevec), then filemap_map_pages maps the whole window — Linux 4.0 maps up to 16
/// neighbouring pages per fault (fault_around_bytes = 64 KiB, commit 8c6e50b0290c).
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

    /// <summary>add_to_page_cache_lru for each missing index, using the already allocated frames.</summary>
    public void AddMissingPages(Exec ex, AddressSpace file, long from, long to, int[] frames)
    {
        Memory mem = sim.Memory;
        int k = 0;
        for (long i = from; i < to; i++)
        {
            if (file.PageCache.Get(i) != 0)
            {
                continue;
            }
            int f = frames[k++];
            mem.Pages[f].Mapping = file.Id;
            mem.Pages[f].Index = i;
            mem.Pages[f].Flags = PageFlags.Uptodate;
            ex.Sys += sim.Costs.PageZeroNs;
            ex.LockHold(file.TreeLock, sim.Costs.PageCacheInsertNs, sim.Costs);
            file.PageCache.Set(i, (uint)(f + 1));
            sim.Swap.LruCacheAdd(ex, f);
        }
    }

    /// <summary>
    /// filemap_map_pages: installs PTEs for the cached pages of [from, to). x86 user protections
    /// include _PAGE_ACCESSED, so a new PTE is young; it is writable only for a write fault on a
    /// shared writable mapping.
    /// </summary>
    public int MapPages(Exec ex, Vma vma, long from, long to, bool write)
    {
        Memory mem = sim.Memory;
        AddressSpace file = vma.File!;
        MmStruct mm = vma.Mm;
        int mapped = 0;
        for (long i = from; i < to; i++)
        {
            long vpn = vma.VpnOf(i);
            if (vpn < 0 || Pte.IsPresent(mm.PageTable.Get(vpn)))
            {
                continue;
            }
            int f = file.FindPage(i);
            if (f < 0)
            {
                continue;
            }
            uint flags = Pte.Present | Pte.Accessed;
            if (write && vma.Writable && vma.Shared)
            {
                flags |= Pte.Write | Pte.Dirty;
            }
            mm.PageTable.Set(vpn, Pte.Make(f, flags));
            mem.Pages[f].MapCount++;
            mm.RssFile++;
            mapped++;
        }
        ex.Sys += mapped * sim.Costs.MapPtePerPageNs;
        return mapped;
    }
}
