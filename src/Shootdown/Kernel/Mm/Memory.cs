using Shootdown.Hardware;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// struct page, packed into 32 bytes so that the fields reclaim touches together share a cache line.
/// </summary>
public struct Page
{
    /// <summary>page->index: the page's offset in its file.</summary>
    public long Index;
    /// <summary>page->mapping: the owning file's id, or -1.</summary>
    public int Mapping;
    /// <summary>page->_mapcount + 1: number of PTEs mapping the frame.</summary>
    public int MapCount;
    /// <summary>page->lru links (frame numbers, -1 = none).</summary>
    public int LruNext;
    public int LruPrev;
    public PageFlags Flags;
    /// <summary>The CPU whose cache last wrote this struct page's line (-1: none; <see cref="Hardware.CacheLines"/>).</summary>
    public short Owner;
}

/// <summary>
/// Physical memory: an array of struct page (integer frame numbers), and one zone per node. Frames of node n are the contiguous range
/// [n * FramesPerNode, (n + 1) * FramesPerNode), so a frame's node is a division, not a lookup.
/// </summary>
public sealed class Memory
{
    /// <summary>Every frame's struct page, indexed by frame number.</summary>
    public readonly Page[] Pages;

    public Memory(int nodes, long framesPerNode, long minFreeKbytes)
    {
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
        for (int i = 0; i < n; i++)
        {
            Pages[i].Mapping = -1;
            Pages[i].LruNext = Pages[i].LruPrev = -1;
            Pages[i].Owner = -1;
        }
        Zones = new Zone[nodes];
        // Watermarks as Linux 4.0 sets them (mm/page_alloc.c): min_free_kbytes is shared between
        // zones in proportion to their size; low = min * 5/4, high = min * 3/2.
        long minPagesTotal = minFreeKbytes / 4;
        for (int z = 0; z < nodes; z++)
        {
            long min = Math.Max(1, minPagesTotal * framesPerNode / total);
            Zones[z] = new Zone(z, z * FramesPerNode, FramesPerNode, min, min + min / 4, min + min / 2);
            for (int f = Zones[z].FirstFrame + FramesPerNode - 1; f >= Zones[z].FirstFrame; f--)
            {
                Pages[f].Flags = PageFlags.Buddy;
                Zones[z].PushFree(f);
            }
        }
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

    /// <summary>del_page_from_lru_list: unlinks a page from the list it is on (active or inactive).</summary>
    public void LruDel(Zone z, int frame)
    {
        ref Page p = ref Pages[frame];
        if ((p.Flags & PageFlags.Lru) == 0)
        {
            throw new InvalidOperationException($"page {frame} is on no LRU list");
        }
        ref LruList list = ref (p.Flags & PageFlags.Active) != 0 ? ref z.ActiveFile : ref z.InactiveFile;
        int prev = p.LruPrev, next = p.LruNext;
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

/// <summary>One node's ZONE_NORMAL: free pages, watermarks, file LRU lists and their locks.</summary>
public sealed class Zone
{
    private readonly int[] _free;
    private int _nrFree;

    public Zone(int node, int firstFrame, int frames, long min, long low, long high)
    {
        Frames = frames;
        Node = node;
        FirstFrame = firstFrame;
        _free = new int[frames];
        WmarkMin = min;
        WmarkLow = low;
        WmarkHigh = high;
        // lru_lock guards the lruvec: the list heads, lru_size counters and reclaim_stat (three
        // lines), and each list operation writes the neighbouring page's links (a fourth).
        LruLock = new SpinLock($"lru_lock/{node}", dataLines: 4);
        // zone->lock guards free_area (the lists and nr_free) and the zone's counters.
        Lock = new SpinLock($"zone->lock/{node}", dataLines: 2);
    }

    public int Node { get; }

    public int FirstFrame { get; }

    public long WmarkMin { get; }

    public long WmarkLow { get; }

    public long WmarkHigh { get; }

    public long NrFree => _nrFree;

    public LruList InactiveFile = LruList.Empty;
    public LruList ActiveFile = LruList.Empty;

    /// <summary>zone->lru_lock (per zone in Linux 4.0; per node from 4.8).</summary>
    public SpinLock LruLock { get; }

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

    public void PushFree(int frame) => _free[_nrFree++] = frame;

    public int PopFree() => _free[--_nrFree];

    /// <summary>zone_watermark_ok for an order-0 allocation.</summary>
    public bool WatermarkOk(long mark) => _nrFree > mark;

    /// <summary>zone_balanced: kswapd's goal, free pages above the high watermark.</summary>
    public bool Balanced => _nrFree > WmarkHigh;
}
