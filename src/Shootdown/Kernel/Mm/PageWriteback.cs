using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/page-writeback.c and the block layer, as far as reclaim and the oracle need them:
/// set_page_dirty, clear_page_dirty_for_io (with page_mkclean, which write-protects and cleans each
/// PTE with ptep_clear_flush), writeback start, and I/O completion after a fixed latency.
/// </summary>
public sealed class PageWriteback
{
    private readonly Sim sim;
    private readonly List<int> _requestFrame = [];
    private readonly Stack<int> _freeRequests = new();

    public PageWriteback(Sim sim)
    {
        this.sim = sim;
        sim.Engine.On(Engine.EventKind.IoComplete, OnIoComplete);
    }

    /// <summary>set_page_dirty for a file page.</summary>
    public void SetPageDirty(int frame)
    {
        ref Page p = ref sim.Memory.Pages[frame];
        if ((p.Flags & PageFlags.Dirty) == 0)
        {
            p.Flags |= PageFlags.Dirty;
            sim.Files[p.Mapping].DirtyIndices.Add(p.Index);
        }
    }

    /// <summary>
    /// clear_page_dirty_for_io: page_mkclean write-protects and cleans every PTE of the page, each
    /// with ptep_clear_flush; a dirty PTE found there re-dirties nothing (the page is being
    /// cleaned). A PTE already cleared by reclaim is not there to be flushed.
    /// </summary>
    public void ClearPageDirtyForIo(Exec ex, int frame)
    {
        ref Page p = ref sim.Memory.Pages[frame];
        sim.Rmap.PageMkclean(ex, frame);
        p.Flags &= ~PageFlags.Dirty;
        sim.Files[p.Mapping].DirtyIndices.Remove(p.Index);
    }

    /// <summary>
    /// Starts writeback of a page that clear_page_dirty_for_io just cleaned. On a file with
    /// <see cref="AddressSpace.SyncIo"/> the I/O has ended when this returns.
    /// </summary>
    public void StartWriteback(Exec ex, int frame)
    {
        sim.Memory.Pages[frame].Flags |= PageFlags.Writeback;
        ex.Sys += sim.Costs.WritebackSubmitNs;
        sim.Oracle?.WritebackStart(ex.EventTime, frame);
        sim.VmStat.Inc(Observe.VmEvent.nr_written);
        if (sim.Files[sim.Memory.Pages[frame].Mapping].SyncIo)
        {
            EndPageWriteback(ex.EventTime, frame);
            return;
        }
        // submit_bio: the completion interrupt is an engine event at its due time.
        int req = _freeRequests.Count > 0 ? _freeRequests.Pop() : NewRequest();
        _requestFrame[req] = frame;
        sim.Engine.Schedule(ex.Now + sim.Costs.IoLatencyNs, Engine.EventKind.IoComplete, req);
    }

    private int NewRequest()
    {
        _requestFrame.Add(-1);
        return _requestFrame.Count - 1;
    }

    /// <summary>The block layer's completion of request <paramref name="req"/>: end_page_writeback.</summary>
    private void OnIoComplete(long t, int req)
    {
        int f = _requestFrame[req];
        _requestFrame[req] = -1;
        _freeRequests.Push(req);
        EndPageWriteback(t, f);
    }

    /// <summary>
    /// rotate_reclaimable_page: a page reclaim wanted but found dirty or under writeback goes to the
    /// tail of the inactive list when its writeback ends, so the next scan frees it — unless it is
    /// off the LRU, active, or dirty again. (The kernel batches these moves in a per-CPU pagevec
    /// from the I/O completion interrupt; the simulator moves the page at once and charges no CPU.)
    /// </summary>
    private void RotateReclaimablePage(int frame)
    {
        Memory mem = sim.Memory;
        PageFlags fl = mem.Pages[frame].Flags;
        if ((fl & PageFlags.Lru) == 0 || (fl & (PageFlags.Active | PageFlags.Dirty | PageFlags.Isolated | PageFlags.Locked)) != 0)
        {
            return;
        }
        mem.LruMoveToInactiveTail(mem.ZoneOf(frame), frame);
        sim.VmStat.Inc(Observe.VmEvent.pgrotated);
    }

    /// <summary>end_page_writeback: the page is clean on disk; a page reclaim wanted is rotated.</summary>
    private void EndPageWriteback(long t, int f)
    {
        ref Page p = ref sim.Memory.Pages[f];
        p.Flags &= ~PageFlags.Writeback;
        sim.Oracle?.WritebackEnd(t, f, p.Mapping, p.Index);
        if ((p.Flags & PageFlags.Reclaim) != 0)
        {
            p.Flags &= ~PageFlags.Reclaim;
            RotateReclaimablePage(f);
        }
    }
}

/// <summary>
/// The flusher thread ("flush-8:0", bdi writeback): every dirty_writeback interval it writes back
/// every dirty page of every file, in file and index order.
/// </summary>
public sealed class FlusherTask(int pid, Cpu cpu, long periodNs) : SimTask(pid, "flush-8:0", null, cpu)
{
    public long PeriodNs { get; } = periodNs;

    protected internal override IEnumerable<Yield> Run(Sim sim)
    {
        Exec ex = sim.Exec;
        while (true)
        {
            ex.What = "writeback";
            foreach (AddressSpace file in sim.Files)
            {
                if (file.DirtyIndices.Count == 0)
                {
                    continue;
                }
                long[] dirty = file.DirtyIndices.ToArray();
                Array.Sort(dirty);
                foreach (long index in dirty)
                {
                    int f = file.FindPage(index);
                    if (f < 0 || (sim.Memory.Pages[f].Flags & (PageFlags.Writeback | PageFlags.Isolated)) != 0)
                    {
                        continue;
                    }
                    sim.Writeback.ClearPageDirtyForIo(ex, f);
                    sim.Writeback.StartWriteback(ex, f);
                }
            }
            sim.Sched.WakeAt(this, ex.Now + PeriodNs);
            yield return Yield.Sleep;
        }
    }
}
