using Shootdown.Kernel.Sched;
using Shootdown.Observe;
using Shootdown.Policies;

namespace Shootdown.Kernel.Mm;

/// <summary>enum migrate_mode: MIGRATE_ASYNC gives up on a busy page, MIGRATE_SYNC waits for it.</summary>
public enum MigrateMode
{
    Async,
    Sync,
}

/// <summary>enum migrate_reason, as mm_migrate_pages prints it.</summary>
public enum MigrateReason
{
    /// <summary>MR_SYSCALL: migrate_pages(2), move_pages(2), mbind(2).</summary>
    Syscall,

    /// <summary>MR_NUMA_MISPLACED: NUMA balancing's hinting fault.</summary>
    NumaMisplaced,
}

/// <summary>
/// mm/migrate.c: moving file pages between nodes. migrate_pages takes a list of isolated pages and,
/// for each, locks it, replaces every PTE mapping it by a migration entry (try_to_migrate — an
/// access meanwhile faults and waits for the page's unlock instead of faulting a new page in),
/// allocates a page on the target node, moves the page-cache slot and copies the data, turns the
/// migration entries into PTEs of the new page (remove_migration_ptes), unlocks and frees the old
/// page. When the unmap's flush happens is the policy's (<see cref="FlushPolicy.MigrateFlush"/>):
/// per page before the copy (every kernel before 6.4), once per batch of up to 512 pages before
/// any copy (6.4), or at the very end (RFC v1 patch 4/4 as posted).
/// </summary>
public sealed class Migrate(Sim sim)
{
    /// <summary>NR_MAX_BATCHED_MIGRATION = HPAGE_PMD_NR (7e12beb8ca2a).</summary>
    public const int NrMaxBatchedMigration = 512;

    /// <summary>migrate_pages retries busy pages up to 10 passes.</summary>
    private const int MaxPasses = 10;

    /// <summary>numamigrate_update_ratelimit (before 4.19): ratelimit_pages = 128 MB per migrate_interval_millisecs = 100 ms, per destination node.</summary>
    public const long NumaRatelimitPages = 128L << (20 - 12);

    public const long NumaRatelimitWindowNs = 100_000_000;

    private readonly Dictionary<int, List<SimTask>> _waiters = [];
    private readonly Stack<List<SimTask>> _spareLists = new();
    private readonly long[] _ratelimitWindowEnd = new long[sim.Memory.NodeZones.Length];
    private readonly long[] _ratelimitPages = new long[sim.Memory.NodeZones.Length];

    /// <summary>
    /// isolate_lru_page: takes the page off its LRU list for migration; false if it is on none
    /// (isolated elsewhere, or in a pagevec). The caller's NR_ISOLATED_FILE update follows:
    /// migrate_pages(2)'s inc_zone_page_state, or for a NUMA-misplaced page
    /// (<paramref name="numaMisplaced"/>, numamigrate_isolate_page) mod_zone_page_state by one,
    /// which has no overstep.
    /// </summary>
    public bool IsolateLruPage(Exec ex, int frame, bool numaMisplaced = false)
    {
        Memory mem = sim.Memory;
        ref Page p = ref mem.Pages[frame];
        if ((p.Flags & PageFlags.Lru) == 0 || p.Mapping < 0)
        {
            return false;
        }
        Zone z = mem.ZoneOf(frame);
        bool wasActive = (p.Flags & PageFlags.Active) != 0;
        ex.LockHold(z.LruLock, sim.Costs.LruPerPageNs + sim.ZoneStats.Mod(ex.Cpu.Id, z.Index, ZoneStats.LruItem(wasActive), -1), mem.LruDel(z, frame));
        p.Flags |= PageFlags.Isolated;
        z.NrIsolatedFile++;
        ex.Sys += numaMisplaced
            ? sim.ZoneStats.Mod(ex.Cpu.Id, z.Index, ZoneStatItem.NrIsolatedFile, 1)
            : sim.ZoneStats.Inc(ex.Cpu.Id, z.Index, ZoneStatItem.NrIsolatedFile);
        return true;
    }

    /// <summary>putback_lru_page: back on the LRU list it came from.</summary>
    public void PutbackLruPage(Exec ex, int frame)
    {
        Memory mem = sim.Memory;
        ref Page p = ref mem.Pages[frame];
        Zone z = mem.ZoneOf(frame);
        if ((p.Flags & PageFlags.Isolated) != 0)
        {
            p.Flags &= ~PageFlags.Isolated;
            z.NrIsolatedFile--;
            ex.Sys += sim.ZoneStats.Dec(ex.Cpu.Id, z.Index, ZoneStatItem.NrIsolatedFile);
        }
        bool active = (p.Flags & PageFlags.Active) != 0;
        ex.LockHold(z.LruLock, sim.Costs.LruPerPageNs + sim.ZoneStats.Mod(ex.Cpu.Id, z.Index, ZoneStats.LruItem(active), 1), mem.LruLockLineWrites(active, atHead: true));
        mem.LruAddHead(z, frame, active);
    }

    private static bool Busy(in Page p) => (p.Flags & (PageFlags.Locked | PageFlags.Writeback)) != 0;

    /// <summary>
    /// migrate_pages(from, alloc on <paramref name="node"/>, mode, reason): moves the isolated pages
    /// <paramref name="from"/>[0..<paramref name="count"/>) to <paramref name="node"/>. A process:
    /// the migration entries stand while steps end, so other tasks' accesses meet them. Pages still
    /// busy (locked or under writeback) after 10 passes go back to the LRU as failures.
    /// </summary>
    public IEnumerable<Yield> MigratePages(Exec ex, SimTask task, int[] from, int count, int node, MigrateMode mode, MigrateReason reason)
    {
        FlushPolicy policy = sim.Policy;
        Memory mem = sim.Memory;
        ex.FlushCause = FlushCause.Migration;
        int[] unmapped = task.MigrateFrom ??= new int[NrMaxBatchedMigration];
        int[] dst = task.MigrateTo ??= new int[NrMaxBatchedMigration];
        long succeeded = 0;
        int pending = count;
        bool batch = policy.MigrateFlush == MigrateFlushSite.Batch;
        bool rfc = policy.MigrateFlush == MigrateFlushSite.EndOfMigratePages;
        for (int pass = 0; pass < MaxPasses && pending > 0; pass++)
        {
            int retry = 0;
            for (int b = 0; b < pending; b += batch ? NrMaxBatchedMigration : 1)
            {
                int n = batch ? Math.Min(NrMaxBatchedMigration, pending - b) : 1;
                int k = 0;
                // Unmap: migrate_folio_unmap of each page of the batch (6.4), or __unmap_and_move's first half.
                for (int i = b; i < b + n; i++)
                {
                    int page = from[i];
                    if (Busy(mem.Pages[page]))
                    {
                        if (rfc)
                        {
                            policy.TryToUnmapFlush(ex); // RFC 4/4: flush before a blocking lock_page / wait_on_page_writeback
                        }
                        from[retry++] = page; // MIGRATE_ASYNC gives up now; a later pass (sync) tries again
                        continue;
                    }
                    IEnumerable<Yield>? slow = sim.PageAlloc.AllocPages(ex, task, node, 1, task.AllocStash);
                    if (slow is not null)
                    {
                        yield return Process.Call(slow);
                        ex.FlushCause = FlushCause.Migration;
                    }
                    mem.Pages[page].Flags |= PageFlags.Locked;
                    ex.Sys += sim.Costs.LockAcquireNs;
                    sim.Rmap.TryToMigrate(ex, page, batchFlush: batch || rfc);
                    unmapped[k] = page;
                    dst[k++] = task.AllocStash[0];
                }
                if (k == 0)
                {
                    continue;
                }
                if (batch)
                {
                    policy.TryToUnmapFlush(ex); // one flush for the whole batch, before any copy
                }
                yield return Yield.Resched; // the migration entries stand
                ex.FlushCause = FlushCause.Migration;
                // Move: migrate_folio_move of each page (6.4), or __unmap_and_move's second half.
                for (int j = 0; j < k; j++)
                {
                    MoveToNewPage(ex, unmapped[j], dst[j]);
                    yield return Yield.Resched; // the copy takes its time: a store to the old frame meanwhile is lost
                    ex.FlushCause = FlushCause.Migration;
                    FinishMove(ex, unmapped[j], dst[j]);
                    succeeded++;
                }
            }
            pending = retry;
            if (pending > 0)
            {
                yield return Yield.Resched; // a sync pass waits for the busy pages
                ex.FlushCause = FlushCause.Migration;
            }
        }
        for (int i = 0; i < pending; i++)
        {
            PutbackLruPage(ex, from[i]);
        }
        if (rfc)
        {
            policy.TryToUnmapFlush(ex); // RFC 4/4: the flush at `out:`, after every page was moved and freed
        }
        sim.VmStat.Add(VmEvent.pgmigrate_fail, pending);
        if (reason == MigrateReason.NumaMisplaced)
        {
            sim.VmStat.Add(VmEvent.numa_pages_migrated, succeeded);
        }
        sim.Trace?.MigratePages(ex.Now, ex.Cpu.Id, task.Comm, task.Pid, succeeded, pending, mode, reason);
    }

    /// <summary>
    /// move_to_new_page of one unmapped page: migrate_page_move_mapping (the page-cache slot now
    /// holds the new page) and migrate_page_copy.
    /// </summary>
    private void MoveToNewPage(Exec ex, int old, int dst)
    {
        Memory mem = sim.Memory;
        ref Page o = ref mem.Pages[old];
        ref Page n = ref mem.Pages[dst];
        AddressSpace file = sim.Files[o.Mapping];
        // migrate_page_move_mapping: the slot replaced, NR_FILE_PAGES moved from the old page's zone
        // to the new one's, under tree_lock.
        ex.LockHold(file.TreeLock, sim.Costs.PageCacheInsertNs
            + sim.ZoneStats.Dec(ex.Cpu.Id, mem.ZoneOf(old).Index, ZoneStatItem.NrFilePages)
            + sim.ZoneStats.Inc(ex.Cpu.Id, mem.ZoneOf(dst).Index, ZoneStatItem.NrFilePages));
        file.PageCache.Set(o.Index, (uint)(dst + 1));
        n.Mapping = o.Mapping;
        n.Index = o.Index;
        n.Flags = o.Flags & (PageFlags.Dirty | PageFlags.Referenced | PageFlags.Active | PageFlags.Uptodate);
        ex.Sys += sim.Lines.CopyPage(ex.Costs, ex.Cpu.Node);
        sim.Oracle?.MigrationCopy(ex, old, dst);
    }

    /// <summary>
    /// After the copy: remove_migration_ptes, unlock (waking tasks waiting on the migration
    /// entries), free the old page, put the new one on the LRU.
    /// </summary>
    private void FinishMove(Exec ex, int old, int dst)
    {
        Memory mem = sim.Memory;
        ref Page n = ref mem.Pages[dst];
        sim.Rmap.RemoveMigrationPtes(ex, old, dst);
        WakeWaiters(ex, old);
        Zone oz = mem.ZoneOf(old);
        oz.NrIsolatedFile--;
        ex.Sys += sim.ZoneStats.Dec(ex.Cpu.Id, oz.Index, ZoneStatItem.NrIsolatedFile);
        sim.Oracle?.MigrationFreed(ex, old);
        sim.PageAlloc.FreePages(ex, new ReadOnlySpan<int>(in old));
        Zone nz = mem.ZoneOf(dst);
        bool active = (n.Flags & PageFlags.Active) != 0;
        ex.LockHold(nz.LruLock, sim.Costs.LruPerPageNs + sim.ZoneStats.Mod(ex.Cpu.Id, nz.Index, ZoneStats.LruItem(active), 1), mem.LruLockLineWrites(active, atHead: true));
        mem.LruAddHead(nz, dst, active);
        sim.VmStat.Inc(VmEvent.pgmigrate_success);
    }

    /// <summary>
    /// migration_entry_wait: an access met a migration entry; the task sleeps until the page is
    /// unlocked (the migration is over), then retries the access.
    /// </summary>
    public IEnumerable<Yield> MigrationEntryWait(SimTask task, int frame)
    {
        if (!_waiters.TryGetValue(frame, out List<SimTask>? list))
        {
            list = _spareLists.Count > 0 ? _spareLists.Pop() : [];
            _waiters[frame] = list;
        }
        list.Add(task);
        yield return Yield.Sleep;
    }

    private void WakeWaiters(Exec ex, int frame)
    {
        if (_waiters.Count == 0 || !_waiters.Remove(frame, out List<SimTask>? list))
        {
            return;
        }
        foreach (SimTask t in list)
        {
            sim.Sched.Wake(t, ex.Now);
        }
        list.Clear();
        _spareLists.Push(list);
    }

    /// <summary>
    /// migrate_misplaced_page: NUMA balancing moves one page to the node of the task that faulted on
    /// it — unless the destination's rate limit (kernels before 4.19) is used up or the page cannot
    /// be isolated. Returns the migration process, or null if the page stays.
    /// </summary>
    public IEnumerable<Yield>? MigrateMisplacedPage(Exec ex, SimTask task, int frame, int node)
    {
        if (sim.Policy.NumaMigrateRateLimited)
        {
            // numamigrate_update_ratelimit
            if (ex.Now >= _ratelimitWindowEnd[node])
            {
                _ratelimitWindowEnd[node] = ex.Now + NumaRatelimitWindowNs;
                _ratelimitPages[node] = 0;
            }
            if (_ratelimitPages[node] >= NumaRatelimitPages)
            {
                return null;
            }
            _ratelimitPages[node]++;
        }
        if (!IsolateLruPage(ex, frame, numaMisplaced: true))
        {
            return null;
        }
        int[] list = task.MigrateList ??= new int[1];
        list[0] = frame;
        return MigratePages(ex, task, list, 1, node, MigrateMode.Async, MigrateReason.NumaMisplaced);
    }
}
