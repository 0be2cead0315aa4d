using Shootdown.Hardware;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// struct page, packed into 32 bytes so that the fields reclaim touches together share a cache line.
/// </summary>
public struct Page
{
    /// <summary>page->index: the page's offset in its file; for a free page in the buddy allocator (PageBuddy), its order (page_private).</summary>
    public long Index;
    /// <summary>page->mapping: the owning file's id, or -1.</summary>
    public int Mapping;
    /// <summary>page->_mapcount + 1: number of PTEs mapping the frame.</summary>
    public int MapCount;
    /// <summary>page->lru links (frame numbers, -1 = none): the LRU list, or while the page is free its buddy free list or per-CPU list.</summary>
    public int LruNext;
    public int LruPrev;
    public PageFlags Flags;
    /// <summary>The CPU whose cache last wrote this struct page's line (-1: none; <see cref="Hardware.CacheLines"/>).</summary>
    public short Owner;
    /// <summary>The owner's socket's cache fill clock when it last wrote this line (<see cref="Hardware.CacheLines"/>): whether the line is still cached.</summary>
    public uint Stamp;
}

/// <summary>
/// Physical memory: an array of struct page (integer frame numbers), and each node's zones (one, or
/// node 0's ZONE_DMA32 and ZONE_NORMAL). Frames of node n are the contiguous range
/// [n * FramesPerNode, (n + 1) * FramesPerNode), so a frame's node is a division, not a lookup.
/// </summary>
public sealed class Memory
{
    /// <summary>Every frame's struct page, indexed by frame number.</summary>
    public readonly Page[] Pages;

    /// <summary>
    /// The line of the PTE that maps each frame: the CPU that last wrote it (installed the mapping,
    /// set or cleared its accessed, dirty or write bit, made it PROT_NONE or present again; -1:
    /// none) and that CPU's socket clock then (<see cref="Hardware.CacheLines"/>). Kept beside
    /// struct page, not in it, so that struct page stays 32 bytes. A frame mapped by several mms has
    /// one record: the last writer's.
    /// </summary>
    public readonly short[] PteWriter;

    /// <inheritdoc cref="PteWriter"/>
    public readonly uint[] PteStamp;

    /// <summary>Records that <paramref name="cpu"/> wrote the PTE line mapping <paramref name="frame"/> now.</summary>
    public void PteWritten(int frame, int cpu, Hardware.CacheLines lines)
    {
        PteWriter[frame] = (short)cpu;
        PteStamp[frame] = lines.StampNow(cpu);
    }

    /// <summary>
    /// <paramref name="minFreeKbytes"/> is the machine's min_free_kbytes. <paramref name="sizingScale"/>
    /// N is the run's 1/N scale: the zones hold 1/N of the machine's frames, but the quantities the
    /// kernel derives from a zone's size — pcp->batch, the watermarks (give
    /// <paramref name="minFreeKbytes"/> of the full-size machine), lowmem_reserve and reclaim's
    /// scan targets, size &gt;&gt; priority — are the full-size zone's, so that a scaled run does per
    /// call what the full-size machine does and only runs for less time (see
    /// <see cref="Zone.SizingScale"/>). <paramref name="dma32Frames"/> of node 0's frames (0: none)
    /// form a ZONE_DMA32 below its ZONE_NORMAL, as the physical memory below 4 GiB does on x86-64;
    /// if they are all of node 0, node 0 has that one zone.
    /// </summary>
    public Memory(int nodes, long framesPerNode, long minFreeKbytes, int nrCpus = 1, int sizingScale = 1, long dma32Frames = 0, bool memcg = true)
    {
        Memcg = memcg;
        if (sizingScale < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(sizingScale), "the sizing scale is 1/N with N >= 1");
        }
        if (framesPerNode <= 0)
        {
            throw new ConfigException("memory per node must be positive");
        }
        long total = nodes * framesPerNode;
        if (total > (1L << 26))
        {
            throw new ConfigException($"{total} frames exceed the simulator's limit of {1L << 26} (256 GiB)");
        }
        FramesPerNode = (int)framesPerNode;
        int n = (int)total;
        Pages = new Page[n];
        PteWriter = new short[n];
        PteStamp = new uint[n];
        for (int i = 0; i < n; i++)
        {
            Pages[i].Mapping = -1;
            Pages[i].LruNext = Pages[i].LruPrev = -1;
            Pages[i].Owner = -1;
            PteWriter[i] = -1;
        }
        // Watermarks as Linux 4.0 sets them (mm/page_alloc.c): min_free_kbytes is shared between
        // zones in proportion to their size; low = min * 5/4, high = min * 3/2. Node 0 may have a
        // ZONE_DMA32 below ZONE_NORMAL.
        long minPagesTotal = minFreeKbytes / 4;
        var zones = new List<Zone>();
        NodeZones = new int[nodes][];
        _split = new int[nodes];
        for (int node = 0; node < nodes; node++)
        {
            int first = node * FramesPerNode;
            var parts = node == 0 && dma32Frames > 0 && dma32Frames < framesPerNode
                ? new[] { (first, (int)dma32Frames, true), (first + (int)dma32Frames, FramesPerNode - (int)dma32Frames, false) }
                : new[] { (first, FramesPerNode, node == 0 && dma32Frames >= framesPerNode) };
            _split[node] = parts.Length == 2 ? parts[1].Item1 : int.MaxValue;
            NodeZones[node] = new int[parts.Length];
            for (int k = 0; k < parts.Length; k++)
            {
                var (ff, frames, dma32) = parts[k];
                // A scaled zone keeps the full-size zone's watermarks in pages, up to 1/16 of its
                // frames (so that a very small scale still leaves the zone usable).
                long fullMin = Math.Max(1, minPagesTotal * frames / total);
                long min = Math.Min(fullMin, sizingScale > 1 ? Math.Max(1, frames / 16) : long.MaxValue);
                var z = new Zone(node, ff, frames, min, min + min / 4, min + min / 2, nrCpus, sizingScale, memcg)
                {
                    Memory = this,
                    IsDma32 = dma32,
                    Index = zones.Count,
                    WmarkMinFullSize = fullMin,
                };
                NodeZones[node][k] = zones.Count;
                zones.Add(z);
                InitFreeArea(z);
            }
        }
        Zones = zones.ToArray();
        // lowmem_reserve (sysctl_lowmem_reserve_ratio 256 for ZONE_DMA32): a ZONE_DMA32 keeps
        // ZONE_NORMAL's managed pages / 256 from allocations that could use Normal. Unlike the
        // watermarks it scales with the zones: it only shifts the marks a Normal-class allocation
        // and kswapd test in DMA32 (the bands between them stay full-size), and what it sets aside
        // is a share of the zone (1.7% on the presets), not a batch.
        foreach (int[] nz in NodeZones)
        {
            if (nz.Length == 2)
            {
                Zones[nz[0]].LowmemReserve = Zones[nz[1]].Frames / 256;
            }
        }
    }

    private readonly int[] _split;

    /// <summary>Each node's zones, lowest first (ZONE_DMA32, then ZONE_NORMAL; one zone on most nodes).</summary>
    public int[][] NodeZones { get; }

    /// <summary>The zone a frame belongs to.</summary>
    public Zone ZoneOf(int frame)
    {
        int node = frame / FramesPerNode;
        int[] nz = NodeZones[node];
        return Zones[nz.Length == 1 || frame < _split[node] ? nz[0] : nz[1]];
    }

    /// <summary>pfmemalloc_watermark_ok over the node's zones: their free pages above half their min watermarks.</summary>
    public bool NodeReserveOk(int node)
    {
        long free = 0, reserve = 0;
        foreach (int zi in NodeZones[node])
        {
            free += Zones[zi].NrFree;
            reserve += Zones[zi].WmarkMin;
        }
        return free > reserve / 2;
    }

    /// <summary>pgdat->pfmemalloc_wait (kept on the node's lowest zone).</summary>
    public List<Sched.SimTask> PfmemallocWaitOf(int node) => Zones[NodeZones[node][0]].PfmemallocWait;

    /// <summary>The node's highest zone (its ZONE_NORMAL): where a node's tests and boot pages go.</summary>
    public Zone TopZone(int node) => Zones[NodeZones[node][^1]];

    /// <summary>
    /// Boot: every frame of the zone goes to the buddy allocator as the largest aligned blocks that
    /// fit (what freeing all of memmap at boot coalesces into).
    /// </summary>
    private void InitFreeArea(Zone z)
    {
        int idx = 0;
        while (idx < z.Frames)
        {
            int order = Zone.MaxOrder - 1;
            while ((idx & ((1 << order) - 1)) != 0 || idx + (1 << order) > z.Frames)
            {
                order--;
            }
            for (int i = 0; i < 1 << order; i++)
            {
                Pages[z.FirstFrame + idx + i].Flags = PageFlags.Free;
            }
            FreeListAdd(z, order, z.FirstFrame + idx, tail: true);
            z.NrFree += 1 << order;
            idx += 1 << order;
        }
    }

    // ---- Buddy free lists (zone->free_area[order], one migrate type) -----------------------------

    /// <summary>list_add (or list_add_tail) of a free block's first page to free_area[order]; marks it PageBuddy with its order.</summary>
    public void FreeListAdd(Zone z, int order, int frame, bool tail)
    {
        Pages[frame].Flags |= PageFlags.Buddy;
        Pages[frame].Index = order;
        ListAdd(ref z.FreeHead[order], ref z.FreeTail[order], frame, tail);
        z.NrFreeArea[order]++;
    }

    /// <summary>list_del of a free block from free_area[order] and rmv_page_order.</summary>
    public void FreeListDel(Zone z, int order, int frame)
    {
        ListDel(ref z.FreeHead[order], ref z.FreeTail[order], frame);
        Pages[frame].Flags &= ~PageFlags.Buddy;
        Pages[frame].Index = 0;
        z.NrFreeArea[order]--;
    }

    /// <summary>list_add / list_add_tail on a list of free pages linked through page->lru (a free_area list or a per-CPU list).</summary>
    public void ListAdd(ref int head, ref int tail, int frame, bool atTail)
    {
        ref Page p = ref Pages[frame];
        if (atTail)
        {
            p.LruNext = -1;
            p.LruPrev = tail;
            if (tail >= 0)
            {
                Pages[tail].LruNext = frame;
            }
            else
            {
                head = frame;
            }
            tail = frame;
        }
        else
        {
            p.LruPrev = -1;
            p.LruNext = head;
            if (head >= 0)
            {
                Pages[head].LruPrev = frame;
            }
            else
            {
                tail = frame;
            }
            head = frame;
        }
    }

    /// <summary>list_del from a list of free pages linked through page->lru.</summary>
    public void ListDel(ref int head, ref int tail, int frame)
    {
        ref Page p = ref Pages[frame];
        int prev = p.LruPrev, next = p.LruNext;
        if (prev >= 0)
        {
            Pages[prev].LruNext = next;
        }
        else
        {
            head = next;
        }
        if (next >= 0)
        {
            Pages[next].LruPrev = prev;
        }
        else
        {
            tail = prev;
        }
        p.LruNext = p.LruPrev = -1;
    }

    /// <summary>Takes a page straight from the buddy allocator at boot (no per-CPU list, no cost): the first block of the lowest order, split as expand() does.</summary>
    public int AllocBootPage(Zone z)
    {
        for (int order = 0; order < Zone.MaxOrder; order++)
        {
            int f = z.FreeHead[order];
            if (f < 0)
            {
                continue;
            }
            FreeListDel(z, order, f);
            for (int o = order - 1; o >= 0; o--)
            {
                FreeListAdd(z, o, f + (1 << o), tail: false);
            }
            z.NrFree--;
            Pages[f].Flags &= ~PageFlags.Free; // allocated: the caller sets what it needs
            return f;
        }
        throw new SimulationException($"node {z.Node} has no free page at boot");
    }

    public int FramesPerNode { get; }

    public Zone[] Zones { get; }

    public int NrFrames => Pages.Length;

    public int NodeOf(int frame) => frame / FramesPerNode;

    /// <summary>
    /// min_free_kbytes as init_per_zone_wmark_min computes it in Linux 4.0: sqrt(lowmem_kbytes * 16),
    /// clamped to [128, 65536].
    /// </summary>
    public static long MinFreeKbytes(long memoryBytes)
    {
        long kb = memoryBytes / 1024;
        long v = (long)Math.Sqrt(kb * 16.0);
        return Math.Clamp(v, 128, 65536);
    }

    // ---- LRU lists (include/linux/mm_inline.h) --------------------------------------------------

    /// <summary>
    /// Whether the kernel runs with memory cgroups (CONFIG_MEMCG built in and not disabled at boot),
    /// which decides where the LRU lists live (<see cref="Policies.PolicyParams.Memcg"/>). With
    /// them, as on the seed's and the cross-checks' kernels, 4.0's mem_cgroup_page_lruvec returns
    /// the root memcg's <c>mem_cgroup_per_zone</c>'s lruvec (allocated apart, on the zone's node),
    /// and <c>struct zone</c>'s own lruvec, beside <c>lru_lock</c>, is unused; without them it is
    /// the one in use.
    /// </summary>
    public bool Memcg { get; }

    /// <summary>
    /// Whether a list operation's write to a file LRU list's head lands in <c>lru_lock</c>'s own
    /// cache line: only without memory cgroups (<see cref="Memcg"/>), when the lists in use are
    /// <c>struct zone</c>'s. Linux 4.0's <c>struct zone</c> starts a line with <c>lru_lock</c> (after
    /// <c>ZONE_PADDING(_pad2_)</c>) and puts <c>struct lruvec</c> right after it, its
    /// <c>lists[]</c> first (3484b2de9499 arranged the reclaim fields so; 0d5d823ab4e6 moved
    /// <c>pages_scanned</c> out from between them): 16-byte <c>list_head</c>s at byte 8 + 16 x
    /// the list's index, in the order inactive anon, active anon, inactive file, active file. So
    /// the inactive file list's head (bytes 40–55) lies wholly in the lock word's 64-byte line,
    /// and the active file list's <c>next</c> (56) does while its <c>prev</c> (64) is in the next
    /// line. Adding at a list's head writes the head's <c>next</c>; taking from its tail writes
    /// its <c>prev</c>. With memory cgroups the lists are in the root memcg's per-zone info and
    /// no list write touches the lock's line.
    /// </summary>
    public int LruLockLineWrites(bool active, bool atHead) => !Memcg && (!active || atHead) ? 1 : 0;

    /// <summary>add_page_to_lru_list: at the head (most recently used end).</summary>
    public void LruAddHead(Zone z, int frame, bool active)
    {
        ref LruList list = ref active ? ref z.ActiveFile : ref z.InactiveFile;
        Pages[frame].LruPrev = -1;
        Pages[frame].LruNext = list.Head;
        if (list.Head >= 0)
        {
            Pages[list.Head].LruPrev = frame;
        }
        else
        {
            list.Tail = frame;
        }
        list.Head = frame;
        list.Count++;
        Pages[frame].Flags |= PageFlags.Lru;
        if (active)
        {
            Pages[frame].Flags |= PageFlags.Active;
        }
        else
        {
            Pages[frame].Flags &= ~PageFlags.Active;
        }
    }

    /// <summary>
    /// rotate_reclaimable_page's move: takes an inactive page out of the middle of its list and puts
    /// it at the tail, where reclaim looks next.
    /// </summary>
    public void LruMoveToInactiveTail(Zone z, int frame)
    {
        ref LruList list = ref z.InactiveFile;
        if (list.Tail == frame)
        {
            return;
        }
        LruDel(z, frame); // not the tail, so the list keeps at least one other page
        ref Page p = ref Pages[frame];
        p.LruNext = -1;
        p.LruPrev = list.Tail;
        Pages[list.Tail].LruNext = frame;
        list.Tail = frame;
        list.Count++;
        p.Flags |= PageFlags.Lru;
    }

    /// <summary>
    /// del_page_from_lru_list: unlinks a page from the list it is on (active or inactive). Returns
    /// its writes to <c>lru_lock</c>'s line (<see cref="LruLockLineWrites"/>): the list head's, if
    /// the page was first or last.
    /// </summary>
    public int LruDel(Zone z, int frame)
    {
        ref Page p = ref Pages[frame];
        if ((p.Flags & PageFlags.Lru) == 0)
        {
            throw new InvalidOperationException($"page {frame} is on no LRU list");
        }
        bool active = (p.Flags & PageFlags.Active) != 0;
        ref LruList list = ref active ? ref z.ActiveFile : ref z.InactiveFile;
        int prev = p.LruPrev, next = p.LruNext;
        int writes = (prev < 0 ? LruLockLineWrites(active, atHead: true) : 0) + (next < 0 ? LruLockLineWrites(active, atHead: false) : 0);
        if (prev >= 0)
        {
            Pages[prev].LruNext = next;
        }
        else
        {
            list.Head = next;
        }
        if (next >= 0)
        {
            Pages[next].LruPrev = prev;
        }
        else
        {
            list.Tail = prev;
        }
        list.Count--;
        p.LruNext = p.LruPrev = -1;
        p.Flags &= ~PageFlags.Lru;
        return writes;
    }

    /// <summary>Takes the page at the tail (least recently used end) off a list; -1 if empty.</summary>
    public int LruTakeTail(Zone z, bool active)
    {
        ref LruList list = ref active ? ref z.ActiveFile : ref z.InactiveFile;
        int f = list.Tail;
        if (f < 0)
        {
            return -1;
        }
        int prev = Pages[f].LruPrev;
        list.Tail = prev;
        if (prev >= 0)
        {
            Pages[prev].LruNext = -1;
        }
        else
        {
            list.Head = -1;
        }
        list.Count--;
        Pages[f].LruNext = Pages[f].LruPrev = -1;
        Pages[f].Flags &= ~PageFlags.Lru;
        return f;
    }
}

public struct LruList
{
    public int Head;
    public int Tail;
    public long Count;

    public static LruList Empty => new() { Head = -1, Tail = -1 };
}

/// <summary>A zone (a node's ZONE_NORMAL, or node 0's ZONE_DMA32): free pages, watermarks, file LRU lists and their locks.</summary>
public sealed class Zone
{
    /// <summary>MAX_ORDER: free blocks of 2^0 .. 2^10 pages.</summary>
    public const int MaxOrder = 11;

    /// <summary>This zone's place in <see cref="Memory.Zones"/>.</summary>
    public int Index { get; init; }

    public Zone(int node, int firstFrame, int frames, long min, long low, long high, int nrCpus = 1, int sizingScale = 1, bool memcg = true)
    {
        Frames = frames;
        SizingScale = sizingScale;
        Node = node;
        FirstFrame = firstFrame;
        WmarkMin = min;
        WmarkLow = low;
        WmarkHigh = high;
        ResetAllocBatch();
        Array.Fill(FreeHead, -1);
        Array.Fill(FreeTail, -1);
        PcpHead = new int[nrCpus];
        PcpTail = new int[nrCpus];
        PcpCount = new int[nrCpus];
        Array.Fill(PcpHead, -1);
        Array.Fill(PcpTail, -1);
        int batch = BatchSize((long)frames * sizingScale);
        if (sizingScale > 1)
        {
            // At a scale so small that every CPU's list at pcp->high would hold more than a quarter
            // of the zone (frames a full-size zone never misses), a smaller batch.
            batch = (int)Math.Min(batch, Math.Max(1, frames / (4L * 6 * nrCpus)));
        }
        PcpBatch = Math.Max(1, batch); // pageset_set_batch: high 6 x batch, batch at least 1
        PcpHigh = 6 * batch;
        // lru_lock guards the lruvec, and each list operation also writes the neighbouring page's
        // links (one line). With memory cgroups the lruvec in use is the root memcg's
        // mem_cgroup_per_zone (4.0: lists[], then reclaim_stat and the zone pointer, then
        // lru_size[]): the file lists' heads (bytes 32-63), reclaim_stat (80-111) and the file
        // lists' lru_size (136-151, mem_cgroup_update_lru_size) are three lines, four with the
        // neighbour's. Without, the lruvec is struct zone's: the heads the file lists use share the
        // lock word's line (which comes with the lock; see Memory.LruLockLineWrites), the active
        // file list's prev and reclaim_stat are the next line, and the zone keeps no lru_size (its
        // NR_*_FILE counts go through the per-CPU vm_stat_diff): two with the neighbour's.
        LruLock = new SpinLock($"lru_lock/{node}", dataLines: memcg ? 4 : 2);
        // zone->lock guards free_area (the lists' heads and nr_free) and the zone's counters; the
        // struct pages the buddy work touches are charged one by one (PageAlloc).
        Lock = new SpinLock($"zone->lock/{node}", dataLines: 2);
    }

    /// <summary>
    /// zone_batchsize of Linux 4.0: a 1/1024 of the zone, at most 512 KiB worth, a quarter of
    /// that (at least 1), rounded down to 2^n - 1 (31 on zones of 512 MiB or more; 0 below 8 MiB);
    /// pcp->high is 6 x that and pcp->batch at least 1.
    /// </summary>
    public static int BatchSize(long managedPages)
    {
        long batch = managedPages / 1024;
        if (batch * 4096 > 512 * 1024)
        {
            batch = 512 * 1024 / 4096;
        }
        batch /= 4;
        if (batch < 1)
        {
            batch = 1;
        }
        long b = batch + batch / 2;
        long pow = 1;
        while (pow * 2 <= b)
        {
            pow *= 2;
        }
        return (int)(pow - 1);
    }

    /// <summary>The memory this zone is part of.</summary>
    public Memory Memory { get; init; } = null!;

    /// <summary>A page taken straight from the buddy allocator without cost (boot-time set-up, tests): <see cref="Mm.Memory.AllocBootPage"/>.</summary>
    public int AllocBootPage() => Memory.AllocBootPage(this);

    /// <summary>pgdat->pfmemalloc_wait: direct reclaimers throttled until kswapd brings the node's free pages above half its min watermark.</summary>
    public readonly List<Sched.SimTask> PfmemallocWait = [];

    /// <summary>free_area[order] list heads and tails (first frames of free blocks; -1 = empty).</summary>
    public readonly int[] FreeHead = new int[MaxOrder];
    public readonly int[] FreeTail = new int[MaxOrder];

    /// <summary>free_area[order].nr_free: blocks of that order.</summary>
    public readonly long[] NrFreeArea = new long[MaxOrder];

    /// <summary>Per-CPU pagesets (struct per_cpu_pages, one list): head, tail and count per CPU.</summary>
    public readonly int[] PcpHead;
    public readonly int[] PcpTail;
    public readonly int[] PcpCount;

    /// <summary>
    /// N of the run's 1/N scale: the zone has 1/N of the full-size zone's frames, and the kernel's
    /// size-derived quantities (pcp->batch, the watermarks, reclaim's scan targets,
    /// zone_reclaimable's threshold, kswapd's balance gap) are computed for N times as many — the
    /// full-size zone's — so that a scaled run reclaims, allocates and wakes kswapd in the same
    /// batches as the full-size machine.
    /// </summary>
    public int SizingScale { get; }

    /// <summary>pcp->batch and pcp->high (zone_batchsize, pageset_set_batch).</summary>
    public int PcpBatch { get; }

    /// <summary>pcp->high: 6 x pcp->batch.</summary>
    public int PcpHigh { get; }

    public int Node { get; }

    /// <summary>ZONE_DMA32 (node 0's memory below 4 GiB), else ZONE_NORMAL.</summary>
    public bool IsDma32 { get; init; }

    /// <summary>lowmem_reserve[ZONE_NORMAL]: pages a Normal-class allocation must leave here.</summary>
    public long LowmemReserve { get; set; }

    /// <summary>NR_ALLOC_BATCH: allocations left in this zone's fair share (high - low per round).</summary>
    public long AllocBatch;

    /// <summary>ZONE_FAIR_DEPLETED.</summary>
    public bool FairDepleted;

    /// <summary>reset_alloc_batches for this zone: NR_ALLOC_BATCH back to its fair share (high - low), ZONE_FAIR_DEPLETED cleared.</summary>
    public void ResetAllocBatch()
    {
        AllocBatch = WmarkHigh - WmarkLow;
        FairDepleted = false;
    }

    public int FirstFrame { get; }

    public long WmarkMin { get; }

    /// <summary>The full-size zone's min watermark, before a small scale's cap (<see cref="WmarkMin"/> is at most 1/16 of a scaled zone's frames).</summary>
    public long WmarkMinFullSize { get; init; }

    public long WmarkLow { get; }

    public long WmarkHigh { get; }

    /// <summary>NR_FREE_PAGES: pages in the buddy allocator (not those on per-CPU lists).</summary>
    public long NrFree;

    public LruList InactiveFile = LruList.Empty;
    public LruList ActiveFile = LruList.Empty;

    /// <summary>zone->lru_lock (per zone in Linux 4.0; per node from 4.8).</summary>
    public SpinLock LruLock { get; }

    /// <summary>
    /// The CPU that last wrote zone->inactive_age (workingset_eviction, workingset_activation; -1:
    /// none). In 4.0's struct zone it follows the lruvec in the reclaim section and starts a line
    /// (lru_lock and a memcg kernel's 120-byte lruvec fill the one before), shared with
    /// percpu_drift_mark and compaction's cached scanner positions, which nothing here writes, so
    /// each increment takes the line from the last writer.
    /// </summary>
    public int InactiveAgeOwner = -1;

    /// <summary>zone->lock, the buddy allocator's lock.</summary>
    public SpinLock Lock { get; }

    /// <summary>zone->managed_pages.</summary>
    public int Frames { get; }

    /// <summary>NR_PAGES_SCANNED: pages scanned since a page was last freed to this zone (zone_reclaimable).</summary>
    public long PagesScanned;

    /// <summary>Pages isolated from the file LRU by reclaimers right now.</summary>
    public long NrIsolatedFile;

    /// <summary>
    /// ZONE_DIRTY: a batch reclaim isolated held only dirty pages not yet queued for writeback, so
    /// kswapd may write file pages itself (set in shrink_inactive_list, cleared when kswapd finds
    /// the zone balanced; Linux 3.11+, commit d43006d503ac "mm: vmscan: have kswapd writeback pages
    /// based on dirty pages encountered, not priority").
    /// </summary>
    public bool ZoneDirty;

    /// <summary>zone_watermark_ok for an order-0 allocation.</summary>
    public bool WatermarkOk(long mark) => NrFree > mark;

    /// <summary>zone_balanced: kswapd's goal, free pages above the high watermark.</summary>
    public bool Balanced => NrFree > WmarkHigh;
}
