using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// struct file_ra_state: one open file's readahead window — [Start, Start + Size) was last read
/// ahead, its last <see cref="AsyncSize"/> pages the lookahead whose first page carries
/// PG_readahead — and the index of the last page read(2) copied.
/// </summary>
public sealed class FileRaState
{
    /// <summary>MMAP_LOTSAMISS: after this many read faults in a row that missed the page cache, filemap_fault stops reading around.</summary>
    public const int MmapLotsaMiss = 100;

    public long Start;
    public int Size;
    public int AsyncSize;

    /// <summary>ra->prev_pos, in pages: the last page read, -1 before the first read.</summary>
    public long PrevIndex = -1;

    /// <summary>ra->ra_pages: the most pages one window may have (the device's read_ahead_kb).</summary>
    public int RaPages = Readahead.DefaultRaPages;

    /// <summary>ra->mmap_miss: read faults that missed the page cache, less those that found their page (never below 0).</summary>
    public int MmapMiss;
}

/// <summary>
/// A readahead window being read in: what <see cref="Readahead.Finish"/> adds once its pages are
/// allocated.
/// </summary>
public readonly record struct RaRequest(long Start, long End, long Marker, int Allocated);

/// <summary>
/// mm/readahead.c of Linux 4.0 for sequential reads: ondemand_readahead sizes the window
/// (get_init_ra_size, get_next_ra_size), __do_page_cache_readahead allocates the window's missing
/// pages and marks the lookahead's first page PG_readahead, and read_pages adds them to the page
/// cache and the LRU and reads them — for a sparse file's holes, the filesystem zero-fills them
/// (<see cref="Filemap.AddMissingPages"/>). A sequential reader's windows grow 4, 8, 16, then 32
/// pages (read_ahead_kb = 128) and are read one window ahead: reading a PG_readahead page starts
/// the next one (page_cache_async_readahead). The window's allocations are __GFP_NORETRY, and
/// read_pages adds its pages a pagevec at a time (<see cref="ReadPages"/>); the mmap read fault's
/// read-around uses the same windows and submission (<see cref="Fault"/>).
/// </summary>
public sealed class Readahead(Sim sim)
{
    /// <summary>VM_MAX_READAHEAD = 128 KiB: the default read_ahead_kb of a block device, in pages.</summary>
    public const int DefaultRaPages = 32;

    /// <summary>get_init_ra_size: the first window of a sequential read of <paramref name="size"/> pages.</summary>
    public static int InitRaSize(int size, int max)
    {
        int n = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, size));
        if (n <= max / 32)
        {
            return n * 4;
        }
        return n <= max / 4 ? n * 2 : max;
    }

    /// <summary>get_next_ra_size: the window after one of <paramref name="cur"/> pages.</summary>
    public static int NextRaSize(int cur, int max) => Math.Min(cur < max / 16 ? 4 * cur : 2 * cur, max);

    /// <summary>
    /// ondemand_readahead for a read of <paramref name="reqSize"/> pages at <paramref name="offset"/>:
    /// updates <paramref name="ra"/> and returns the window to read ahead (Size 0: none). A read at
    /// the start of the file, or a sequential cache miss, starts a new window; the expected read
    /// (at the lookahead mark, or just past the window) pushes the window forward and ramps it up;
    /// a PG_readahead page hit without matching state resumes from the next hole in the cache.
    /// Random reads (none of the workloads makes one) read just what was asked: the context
    /// readahead 4.0 tries first for them (try_context_readahead, a window sized by the cached
    /// pages just before the read) is not modelled, nor is max_sane_readahead's cap (half of the
    /// node's inactive file and free pages, far above 32 here).
    /// </summary>
    public (long Start, int Size, int AsyncSize) Ondemand(FileRaState ra, AddressSpace file, long offset, bool hitMarker, int reqSize = 1)
    {
        int max = ra.RaPages;
        if (max <= 0)
        {
            return (offset, reqSize, 0); // readahead off: read what was asked
        }
        if (offset == 0)
        {
            return Initial(ra, offset, reqSize, max);
        }
        if (offset == ra.Start + ra.Size - ra.AsyncSize || offset == ra.Start + ra.Size)
        {
            ra.Start += ra.Size;
            ra.Size = NextRaSize(ra.Size, max);
            ra.AsyncSize = ra.Size;
            return ReadIt(ra, offset, max);
        }
        if (hitMarker)
        {
            // page_cache_next_hole from offset + 1, at most max pages on.
            long start = offset + 1;
            while (start - offset <= max && start < file.SizePages && file.PageCache.Get(start) != 0)
            {
                start++;
            }
            if (start - offset > max)
            {
                return (offset, 0, 0);
            }
            ra.Start = start;
            ra.Size = (int)(start - offset) + reqSize;
            ra.Size = NextRaSize(ra.Size, max);
            ra.AsyncSize = ra.Size;
            return ReadIt(ra, offset, max);
        }
        // The kernel's test is unsigned (offset - prev <= 1UL): the same page or the next, never a backward read.
        if (reqSize > max || offset == ra.PrevIndex || offset == ra.PrevIndex + 1)
        {
            return Initial(ra, offset, reqSize, max);
        }
        return (offset, reqSize, 0); // a standalone, small random read
    }

    private static (long, int, int) Initial(FileRaState ra, long offset, int reqSize, int max)
    {
        ra.Start = offset;
        ra.Size = InitRaSize(reqSize, max);
        ra.AsyncSize = ra.Size > reqSize ? ra.Size - reqSize : ra.Size;
        return ReadIt(ra, offset, max);
    }

    /// <summary>readit: a window whose mark would be this very read merges the next window into it.</summary>
    private static (long, int, int) ReadIt(FileRaState ra, long offset, int max)
    {
        if (offset == ra.Start && ra.Size == ra.AsyncSize)
        {
            ra.AsyncSize = NextRaSize(ra.Size, max);
            ra.Size += ra.AsyncSize;
        }
        return (ra.Start, ra.Size, ra.AsyncSize);
    }

    /// <summary>
    /// __do_page_cache_readahead's allocation for the window [<paramref name="start"/>,
    /// +<paramref name="size"/>) of <paramref name="file"/> (clipped to its end): one page per
    /// missing index, on <paramref name="task"/>'s node, into its allocation stash. Returns null
    /// when nothing was missing or the fast path had them, else the allocator's slow path, which
    /// the caller runs before <see cref="Finish"/>. The kernel allocates these with __GFP_NORETRY
    /// (page_cache_alloc_readahead) and reads only the pages before the first allocation that
    /// failed: <paramref name="noRetry"/>, and the count <see cref="PageAlloc.SlowpathGot"/> gives
    /// after the slow path. Without it the allocator reclaims until it has them all (the
    /// single-page reads of no_cached_page and page_cache_read are not NORETRY).
    /// </summary>
    public IEnumerable<Yield>? Submit(Exec ex, SimTask task, AddressSpace file, long start, int size, int asyncSize, out RaRequest req, bool noRetry = false)
    {
        long end = Math.Min(start + size, file.SizePages);
        long marker = asyncSize > 0 ? start + size - asyncSize : -1;
        if (marker >= end || (marker >= 0 && file.PageCache.Get(marker) != 0))
        {
            marker = -1; // past the end, or already cached: nothing to mark
        }
        int need = start < end ? sim.Filemap.CountMissing(file, start, end) : 0;
        req = new RaRequest(start, end, marker, need);
        if (need == 0)
        {
            return null;
        }
        int[] stash = task.AllocStash.Length >= need ? task.AllocStash : task.AllocStash = new int[Math.Max(need, task.AllocStash.Length * 2)];
        return sim.PageAlloc.AllocPages(ex, task, task.HomeCpu.Node, need, stash, noRetry);
    }

    /// <summary>
    /// read_pages for a window <see cref="Submit"/> allocated: the pages go into the page cache and
    /// onto the LRU and are read (holes zero-filled); the lookahead's first page gets PG_readahead;
    /// pages another task read in meanwhile are freed again. <paramref name="allocated"/>: the
    /// pages the allocation got (<see cref="RaRequest.Allocated"/> unless a NORETRY slow path
    /// gave up early, when the window's first missing pages are read and the rest stay holes).
    /// </summary>
    public void Finish(Exec ex, SimTask task, AddressSpace file, in RaRequest req, int allocated)
    {
        var c = new RaCursor(req, allocated);
        ReadPages(ex, task, file, ref c, stopAtDrain: false);
    }

    /// <summary>
    /// <see cref="Finish"/> a pagevec at a time: returns false after a page whose lru_cache_add
    /// drained this CPU's pagevec with pages still to add (the caller ends the step with a sync
    /// point, <see cref="Yield.Sync"/>, and calls again: another CPU's pages may reach the LRU in
    /// between, as they may between two of the kernel's drains), true when the window is read.
    /// </summary>
    public bool ReadPages(Exec ex, SimTask task, AddressSpace file, ref RaCursor c, bool stopAtDrain = true)
    {
        if (c.Allocated == 0)
        {
            return true;
        }
        RaRequest req = c.Request;
        if (!sim.Filemap.AddMissingPages(ex, file, ref c.Next, req.End, task.AllocStash, ref c.Used, c.Allocated, stopAtDrain))
        {
            return false;
        }
        if (c.Used < c.Allocated)
        {
            sim.PageAlloc.FreePages(ex, task.AllocStash.AsSpan(c.Used, c.Allocated - c.Used));
        }
        if (req.Marker >= 0 && file.FindPage(req.Marker) is int f and >= 0)
        {
            sim.Memory.Pages[f].Flags |= PageFlags.Readahead;
        }
        c.Allocated = 0;
        return true;
    }
}

/// <summary>Where <see cref="Readahead.ReadPages"/> has got to in a window: the next index, and the stash's frames used of those allocated.</summary>
public struct RaCursor(RaRequest request, int allocated)
{
    public RaRequest Request = request;
    public long Next = request.Start;
    public int Used;
    public int Allocated = allocated;
}
