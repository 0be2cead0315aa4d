using Shootdown.Hardware;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// struct mm_struct: an address space with its page table, VMAs and <c>mm_cpumask</c> — the CPUs
/// that may hold TLB entries for it (x86 of Linux 4.0 sets a CPU's bit in switch_mm and clears it
/// when the CPU switches to another mm or leaves lazy TLB mode).
/// </summary>
public sealed class MmStruct
{
    /// <summary>
    /// Where the simulator's mmap area starts (virtual page 2^20, 4 GiB). It stands for Linux's
    /// top-down mmap area just below 0x7f..., far above any physical address; the page tables are
    /// flat arrays, so the simulator keeps it low. Addresses below it (a task's text and stack at
    /// 0x400000, the hot table at 0x10000000) are the ones a physical address used as a linear one
    /// can coincide with.
    /// </summary>
    public const long MmapBase = 1L << 20;

    public MmStruct(int id, int nrCpus, LeafPool pool)
    {
        Id = id;
        CpuMask = new Cpumask(nrCpus);
        PageTable = new RadixMap(pool, 1 << 16);
    }

    public int Id { get; }


    public Cpumask CpuMask { get; }

    /// <summary>Virtual page number -> PTE (see <see cref="Pte"/>).</summary>
    public RadixMap PageTable { get; }

    public List<Vma> Vmas { get; } = [];

    /// <summary>mm->mm_users: threads using the mm; the last one's exit tears it down (exit_mmap).</summary>
    public int Users;

    /// <summary>The node whose memory holds this mm's page tables: the node of its first fault's CPU (-1: none yet; <see cref="Hardware.CacheLines.PteLine"/>).</summary>
    public int PageTableNode = -1;

    // ---- split PTE locks ------------------------------------------------------------------------
    // USE_SPLIT_PTE_PTLOCKS (NR_CPUS >= 4 on x86-64): each page-table page has its own spinlock,
    // taken with spin_lock (interrupts on) by the paths that read or write its PTEs — page faults
    // (do_fault_around/filemap_map_pages, do_wp_page), page_referenced_one, try_to_unmap_one (which
    // holds it across ptep_clear_flush, IPI wait included), page_mkclean_one, remove_migration_pte,
    // change_pte_range; not modelled in do_numa_page and zap_pte_range. The simulator creates a
    // page-table page's lock when it is first taken and drops it when the page-table page empties
    // (its counts go to the totals below; Linux keeps the page-table page, so a booking another CPU
    // made in the future is forgotten with it — rare: the page emptied).

    private SpinLock?[] _ptl = new SpinLock?[16];

    /// <summary>Totals of the PTE locks already dropped.</summary>
    public long PtlAcquisitions, PtlContended, PtlSpinNs, PtlHoldNs, PtlAcquireNs;

    /// <summary>Most holds booked at once on one PTE lock of this mm.</summary>
    public int PtlMaxQueued;

    /// <summary>The PTE lock of the page-table page that maps <paramref name="vpn"/>.</summary>
    public SpinLock Ptl(long vpn)
    {
        long d = vpn >> RadixMap.LeafShift;
        if (d >= _ptl.Length)
        {
            Array.Resize(ref _ptl, (int)Math.Max(d + 1, _ptl.Length * 2L));
        }
        return _ptl[d] ??= new SpinLock("ptl", dataLines: 0, capacity: 2);
    }

    /// <summary>Drops the lock of <paramref name="vpn"/>'s page-table page if that page is gone (its last PTE was cleared).</summary>
    public void PtlDropIfEmpty(long vpn)
    {
        long d = vpn >> RadixMap.LeafShift;
        if (d < _ptl.Length && _ptl[d] is { } l && !PageTable.LeafLive(vpn))
        {
            PtlAcquisitions += l.Acquisitions;
            PtlContended += l.Contended;
            PtlSpinNs += l.SpinNs;
            PtlAcquireNs += l.AcquireNs;
            PtlHoldNs += l.HoldNs;
            PtlMaxQueued = Math.Max(PtlMaxQueued, l.MaxLive);
            _ptl[d] = null;
        }
    }

    /// <summary>The PTE locks that exist now.</summary>
    public IEnumerable<SpinLock> LivePtls => _ptl.OfType<SpinLock>();

    /// <summary>mm->tlb_flush_batched (Linux 4.13, 3ea277194daa): a deferred flush may be pending.</summary>
    public bool TlbFlushBatched;

    /// <summary>
    /// Bumped whenever a PTE of this mm is cleared or loses its write or dirty bit: a TLB entry
    /// checked against the page table at the current epoch is still valid (the oracle's fast path).
    /// </summary>
    public int PteEpoch;

    /// <summary>
    /// The CPU that last wrote the line of mm->rss_stat: reclaim's dec_mm_counter from any CPU (an
    /// atomic, since the unmapping task is not the mm's owner; the owner's own faults count in
    /// its task's cache and fold it in rarely, which the model leaves out). -1: no cache holds it.
    /// </summary>
    public int RssLineOwner = -1;

    /// <summary>mm->numa_next_scan: when task_numa_work next scans this mm (-1: NUMA balancing has not started).</summary>
    public long NumaNextScan = -1;

    /// <summary>mm->numa_scan_offset: the virtual page where the next scan starts.</summary>
    public long NumaScanOffset;

    /// <summary>Resident pages (file-backed) mapped by this mm.</summary>
    public long RssFile;

    /// <summary>
    /// Pages mapped outside any VMA (<see cref="Sim.MapHotPages"/>: a task's text and stack) lie in
    /// [FixedLow, FixedHigh).
    /// </summary>
    public long FixedLow = long.MaxValue;

    public long FixedHigh = long.MinValue;

    /// <summary>
    /// Whether a TLB entry for <paramref name="vpn"/> of this mm can exist: only addresses inside a
    /// VMA or the fixed pages are ever mapped, so only they are ever walked and cached (VMAs are
    /// never removed in the simulator, so this holds for stale entries too).
    /// </summary>
    public bool MayBeCached(long vpn) => (vpn >= FixedLow && vpn < FixedHigh) || FindVma(vpn) is not null;

    public Vma? FindVma(long vpn)
    {
        foreach (Vma v in Vmas)
        {
            if (vpn >= v.Start && vpn < v.End)
            {
                return v;
            }
        }
        return null;
    }
}

/// <summary>struct vm_area_struct: a mapping of a file (or anonymous memory) into an mm.</summary>
public sealed class Vma(MmStruct mm, long start, long pages, AddressSpace? file, long pgoff, bool writable, bool shared)
{
    public MmStruct Mm { get; } = mm;

    public long Start { get; } = start;

    public long End { get; } = start + pages;

    public AddressSpace? File { get; } = file;

    public long PgOff { get; } = pgoff;

    public bool Writable { get; set; } = writable;

    public bool Shared { get; } = shared;

    /// <summary>VM_EXEC: an executable mapping (page_referenced reports it; reclaim keeps such pages active).</summary>
    public bool Exec { get; init; }

    /// <summary>Pages a read fault maps around the faulting one (fault_around_bytes / PAGE_SIZE; 1 = none).</summary>
    public int FaultAroundPages { get; init; } = 1;

    /// <summary>
    /// The mapped file's readahead state (vma->vm_file->f_ra) when its read faults read around
    /// (filemap_fault on a file of a block device: <see cref="Fault"/>); null for a file without
    /// readahead, whose read faults read just the fault-around window's missing pages.
    /// </summary>
    public FileRaState? Ra { get; init; }

    /// <summary>When the last mprotect that removed write permission returned (for the oracle).</summary>
    public long ProtectedAt { get; set; }

    /// <summary>The virtual page at which file page <paramref name="index"/> is mapped, or -1.</summary>
    public long VpnOf(long index)
    {
        long vpn = Start + (index - PgOff);
        return vpn >= Start && vpn < End ? vpn : -1;
    }
}

/// <summary>struct address_space: a file's page cache and the VMAs that map it (i_mmap).</summary>
public sealed class AddressSpace
{
    public AddressSpace(int id, string name, long sizePages, LeafPool pool)
    {
        Id = id;
        Name = name;
        SizePages = sizePages;
        PageCache = new RadixMap(pool, Math.Min(sizePages, 1 << 20));
        TreeLock = new SpinLock($"tree_lock/{name}");
        _radixNodes = new RadixNodeState[(sizePages + (1L << Workingset.RadixNodeShift) - 1) >> Workingset.RadixNodeShift];
    }

    private readonly RadixNodeState[] _radixNodes;

    /// <summary>The page-cache radix tree's node of 64 slots number <paramref name="node"/> (index >> 6): what <see cref="Workingset"/> keeps of it.</summary>
    public ref RadixNodeState RadixNode(int node) => ref _radixNodes[node];

    /// <summary>AS_EXITING: truncate_inode_pages_final has begun, so reclaim leaves no shadow entries (mapping_exiting).</summary>
    public bool Exiting { get; set; }

    public int Id { get; }

    /// <summary>The CPU that last wrote i_mmap_rwsem's count (rmap walks take it for reading; <see cref="Hardware.CacheLines"/>).</summary>
    public int IMmapOwner = -1;

    public string Name { get; }

    public long SizePages { get; }

    /// <summary>File index -> frame + 1 (0 = not cached).</summary>
    public RadixMap PageCache { get; }

    /// <summary>mapping->i_mmap: the reverse map of a file page is every VMA here that covers it.</summary>
    public List<Vma> IMmap { get; } = [];

    /// <summary>Indices of the file's dirty pages (the radix tree's PAGECACHE_TAG_DIRTY).</summary>
    public HashSet<long> DirtyIndices { get; } = [];

    /// <summary>
    /// The file lives on a block device whose writes complete inside submit_bio (a ramdisk, brd):
    /// end_page_writeback runs before writepage returns, so pageout() finds the page clean at once
    /// ("a synchronous write - probably a ramdisk" in shrink_page_list) and reclaim frees it in the
    /// same pass.
    /// </summary>
    public bool SyncIo { get; init; }

    /// <summary>mapping->tree_lock (spinlock_irq in Linux 4.0).</summary>
    public SpinLock TreeLock { get; }

    public int FindPage(long index) => (int)PageCache.Get(index) - 1;
}
