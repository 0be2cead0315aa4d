using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>mm/workingset.c's bookkeeping in reclaim and the page cache (Linux 4.0).</summary>
public class WorkingsetTests
{
    /// <summary>small-2node (2 x 4 CPUs) whose node 0 holds <paramref name="pages"/> clean, unmapped pages of one file on its inactive list, index 0 at the tail.</summary>
    private static Sim WithInactivePages(int pages) =>
        TestKit.WithInactivePages(RunConfig.Create(machine: "small-2node", policy: "vanilla"), pages);

    [Fact]
    public void EachReclaimedPageIncrementsItsZonesInactiveAgeOnALineTheReclaimersPassAround()
    {
        Sim sim = WithInactivePages(200_000);
        Zone z = sim.Memory.Zones[0];
        SimTask reader = sim.UserTasks[0];
        TestKit.RunToEnd(sim.Vmscan.ShrinkLruvec(TestKit.ExecOn(sim, 0), reader, 0, Vmscan.DefPriority));
        long first = reader.Sc!.NrReclaimed;
        Assert.Equal(200_000 >> 12, first);
        Assert.Equal(first, sim.Workingset.Evictions);
        Assert.Equal(0, z.InactiveAgeOwner);
        // The first increment fetches the line from DRAM, the others find it in CPU 0's cache.
        long c = sim.Costs.LockAcquireNs;
        Assert.Equal(first * c + sim.Lines.Transfer(-1, 0), sim.Workingset.InactiveAgeNs);

        // A reclaimer on the other node takes the line across: one remote transfer, then local hits.
        long before = sim.Workingset.InactiveAgeNs;
        SimTask other = sim.UserTasks[4];
        TestKit.RunToEnd(sim.Vmscan.ShrinkLruvec(TestKit.ExecOn(sim, 4, 1_000_000_000), other, 0, Vmscan.DefPriority));
        long second = other.Sc!.NrReclaimed;
        Assert.True(second > 0);
        Assert.Equal(first + second, sim.Workingset.Evictions);
        Assert.Equal(4, z.InactiveAgeOwner);
        Assert.True(sim.Lines.Transfer(0, 4) > sim.Lines.Transfer(0, 1), "a cross-node transfer should cost more than a same-node one");
        Assert.Equal(second * c + sim.Lines.Transfer(0, 4), sim.Workingset.InactiveAgeNs - before);
        Assert.Equal(0, sim.Workingset.Activations);
    }

    [Fact]
    public void ARadixNodeGoesOnTheShadowListWhenReclaimTakesItsLastPageAndComesOffWhenAPageReturns()
    {
        Sim sim = WithInactivePages(200_000);
        AddressSpace file = sim.Files[^1]; // the file WithInactivePages made (the workload's readers have theirs)
        SimTask reader = sim.UserTasks[0];
        // 48 pages (indices 0..47): node 0 (slots 0..63) still holds pages.
        TestKit.RunToEnd(sim.Vmscan.ShrinkLruvec(TestKit.ExecOn(sim, 0), reader, 0, Vmscan.DefPriority));
        Assert.Equal(48, sim.Workingset.Evictions);
        Assert.Equal(0, sim.Workingset.ShadowNodesAdded);
        Assert.False(file.RadixNode(0).OnShadowList);
        // 48 more (48..95): node 0 is left with shadow entries only, node 1 (64..127) not.
        TestKit.RunToEnd(sim.Vmscan.ShrinkLruvec(TestKit.ExecOn(sim, 0, 1_000_000), reader, 0, Vmscan.DefPriority));
        Assert.Equal(96, sim.Workingset.Evictions);
        Assert.Equal(1, sim.Workingset.ShadowNodesAdded);
        Assert.True(file.RadixNode(0).OnShadowList);
        Assert.False(file.RadixNode(1).OnShadowList);
        Assert.Equal(1, sim.Workingset.ShadowNodesLocks[0].Acquisitions); // the radix node was allocated on node 0
        Assert.Equal(0, sim.Workingset.ShadowNodesLocks[1].Acquisitions);

        // A fault on CPU 4 (node 1) reads index 5 back in: the node holds a page again and leaves
        // the list, under the lock of the node it was allocated on (0), not the faulting CPU's.
        Exec ex = TestKit.ExecOn(sim, 4, 2_000_000);
        int[] frames = [sim.Memory.Zones[0].AllocBootPage()];
        Assert.Equal(1, sim.Filemap.AddMissingPages(ex, file, 5, 6, frames, 1));
        Assert.Equal(1, sim.Workingset.ShadowNodesDeleted);
        Assert.False(file.RadixNode(0).OnShadowList);
        Assert.Equal(2, sim.Workingset.ShadowNodesLocks[0].Acquisitions);
        Assert.Equal(0, sim.Workingset.ShadowNodesLocks[1].Acquisitions);
        Assert.Equal(0, file.RadixNode(0).MemNode); // kept: the node was not reallocated
        // Adding a second page to a node that holds one takes no list lock.
        int[] more = [sim.Memory.Zones[0].AllocBootPage()];
        Assert.Equal(1, sim.Filemap.AddMissingPages(ex, file, 6, 7, more, 1));
        Assert.Equal(2, sim.Workingset.ShadowNodesLocks[0].Acquisitions);

        // A node a page creates is allocated on the inserting CPU's node: one CPU 4 fills is node
        // 1's, and when reclaim empties it, it is listed under node 1's lock.
        AddressSpace fresh = sim.CreateFile("fresh", 64);
        int[] f2 = [sim.Memory.Zones[0].AllocBootPage()];
        Assert.Equal(1, sim.Filemap.AddMissingPages(ex, fresh, 10, 11, f2, 1));
        Assert.Equal(1, fresh.RadixNode(0).MemNode);
        fresh.PageCache.Clear(10);
        sim.Workingset.PageDeleted(ex, fresh, 10, shadow: true);
        Assert.True(fresh.RadixNode(0).OnShadowList);
        Assert.Equal(1, sim.Workingset.ShadowNodesLocks[1].Acquisitions);
    }

    [Fact]
    public void TruncationAndReclaimOfAnExitingMappingLeaveNoShadow()
    {
        Sim sim = WithInactivePages(200_000);
        AddressSpace file = sim.Files[^1]; // the file WithInactivePages made (the workload's readers have theirs)
        file.Exiting = true; // truncate_inode_pages_final has begun
        SimTask reader = sim.UserTasks[0];
        TestKit.RunToEnd(sim.Vmscan.ShrinkLruvec(TestKit.ExecOn(sim, 0), reader, 0, Vmscan.DefPriority));
        TestKit.RunToEnd(sim.Vmscan.ShrinkLruvec(TestKit.ExecOn(sim, 0, 1_000_000), reader, 0, Vmscan.DefPriority));
        Assert.Equal(96, sim.VmStat[VmEvent.pgsteal_direct]);
        Assert.Equal(0, sim.Workingset.Evictions);
        Assert.Equal(0, sim.Workingset.ShadowNodesAdded);
        Assert.Equal(-1, sim.Memory.Zones[0].InactiveAgeOwner);
        Assert.False(file.RadixNode(0).HasShadows);

        // A truncation's deletes leave no shadow either, so an emptied node is not listed.
        Exec ex = TestKit.ExecOn(sim, 0, 2_000_000);
        for (long i = 128; i < 192; i++)
        {
            file.PageCache.Clear(i);
            sim.Workingset.PageDeleted(ex, file, i, shadow: false);
        }
        Assert.Equal(0, sim.Workingset.ShadowNodesAdded);
    }

    [Fact]
    public void MarkPageAccessedActivatingAFilePageIncrementsInactiveAge()
    {
        Sim sim = WithInactivePages(16);
        int f = sim.Files[^1].FindPage(3);
        Exec ex = TestKit.ExecOn(sim, 2);
        sim.Swap.MarkPageAccessed(ex, f); // sets PG_referenced
        Assert.Equal(0, sim.Workingset.Activations);
        long sys = ex.Sys;
        sim.Swap.MarkPageAccessed(ex, f); // referenced again: activated
        Assert.Equal(1, sim.Workingset.Activations);
        Assert.Equal(2, sim.Memory.Zones[0].InactiveAgeOwner);
        // The increment: a locked add and the line from DRAM (no CPU wrote it before), on top of the LRU move.
        long inc = sim.Costs.LockAcquireNs + sim.Lines.Transfer(-1, 2);
        Assert.Equal(inc, sim.Workingset.InactiveAgeNs);
        Assert.True(ex.Sys - sys > inc);
    }

    [Fact]
    public void AStreamingRunEvictsEveryReclaimedPageAndListsAboutOneRadixNodePer64()
    {
        RunResult r = Runner.Run(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla", workload: "lru-file-mmap-read"));
        Assert.True(r.PagesReclaimed > 10_000, $"{r.PagesReclaimed} reclaimed");
        // The readers have all exited before the rm sets AS_EXITING, so no reclaimed page escapes workingset_eviction.
        Assert.Equal(r.PagesReclaimed, r.Workingset.Evictions);
        // Readers stream their files, so reclaim empties whole radix nodes: one list_lru_add per 64
        // pages but for the nodes still partly cached when the readers end (a few per file, as a
        // page kept at its first scan leaves after its neighbours).
        long perNode = r.Workingset.Evictions / 64;
        Assert.InRange(r.Workingset.ShadowNodesAdded, perNode - perNode / 20, perNode);
        Assert.Equal(0, r.Workingset.ShadowNodesDeleted);
        Assert.Equal(r.Workingset.ShadowNodesAdded, r.Locks["workingset_shadow_nodes"].Acquisitions);
        Assert.True(r.Workingset.InactiveAgeS > 0);
    }

    [Fact]
    public void TheFinalTruncationMarksTheMappingExitingAndItsDeletesLeaveNoShadow()
    {
        Sim sim = new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla"));
        Zone z = sim.Memory.Zones[0];
        AddressSpace file = sim.CreateFile("removed", 128);
        int[] frames = TestKit.CachePages(sim, file, 128);
        // Reclaim's deletes: all of node 0 (listed) and index 64 of node 1 (shadows beside pages).
        Exec ex = TestKit.ExecOn(sim, 0);
        foreach (int i in Enumerable.Range(0, 65))
        {
            sim.Memory.LruDel(z, frames[i]);
            file.PageCache.Clear(i);
            sim.Workingset.PageDeleted(ex, file, i, shadow: true);
        }
        Assert.Equal(1, sim.Workingset.ShadowNodesAdded);
        Assert.True(file.RadixNode(1).HasShadows);
        Assert.False(file.Exiting);

        SimTask task = sim.UserTasks[0];
        using var runner = new ProcessRunner(sim.Truncate.TruncateInodePagesFinal(file));
        int steps = 0;
        do
        {
            sim.Exec.Reset(sim.Cpus[0], task, steps * 100_000L, steps * 100_000L);
            Assert.True(++steps < 100, "truncate did not end");
        }
        while (runner.MoveNext());
        Assert.Equal(0, file.PageCache.Count);
        Assert.True(file.Exiting);
        // Truncation's deletes leave no shadow: node 1 loses its pages without being listed (the
        // model takes its shadows as cleared), and node 0, which held only shadows, is not walked.
        Assert.False(file.RadixNode(1).HasShadows);
        Assert.False(file.RadixNode(1).OnShadowList);
        Assert.Equal(1, sim.Workingset.ShadowNodesAdded);
        Assert.True(file.RadixNode(0).OnShadowList);
    }
}
