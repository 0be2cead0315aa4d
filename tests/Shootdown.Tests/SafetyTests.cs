using CsCheck;
using Shootdown.Kernel.Sched;
using Shootdown.Policies;
using Shootdown.Reports;
using Shootdown.Safety;

namespace Shootdown.Tests;

/// <summary>Linux 4.3 with its flush-before-free removed: the batch is flushed only at the end of shrink_lruvec.</summary>
internal sealed class Linux43WithoutFlushBeforeFree() : Linux43(new PolicyParams())
{
    public override UnmapFlushSite FlushSite => UnmapFlushSite.ShrinkLruvec;
}

/// <summary>Linux 4.3 without try_to_unmap_flush_dirty: pageout() may start I/O while a deferred flush is pending.</summary>
internal sealed class Linux43WithoutFlushBeforePageout() : Linux43(new PolicyParams())
{
    public override void TryToUnmapFlushDirty(Exec ex)
    {
    }
}

/// <summary>Linux 4.13 with flush_tlb_batched_pending removed from mprotect/munmap/madvise.</summary>
internal sealed class Linux413WithoutBatchedPending() : Linux413(new PolicyParams())
{
    public override void FlushTlbBatchedPending(Exec ex, Kernel.Mm.MmStruct mm)
    {
    }
}

public class SafetyTests
{
    /// <summary>The documented mprotect-race configuration: 2 nodes x 4 CPUs, 256 MiB.</summary>
    private static RunConfig ProtectRun(string policy, ulong seed = 1, bool stop = false) =>
        RunConfig.Create(machine: "small-2node", scaleDivisor: 16, workload: "mprotect-race", policy: policy, seed: seed, stopOnViolation: stop);

    [Fact]
    public void LostWriteIsReportedWhenAStaleStoreFollowsTheCaptureAndThePageIsFreedClean()
    {
        // The chain the seed's cover letter warns about, built step by step with rfc-pfn32: reclaim
        // clears a dirty PTE and defers the flush; writeback captures the page; a store goes through
        // the writer's stale entry; the I/O ends; reclaim frees the now clean page before the flush.
        var sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "rfc-pfn32", oracle: true));
        Kernel.Mm.Memory mem = sim.Memory;
        Kernel.Mm.Zone z = mem.Zones[0];
        var (mm, vma, f) = KernelTests.MapOnePage(sim, 0, Kernel.Mm.Pte.Write | Kernel.Mm.Pte.Dirty | Kernel.Mm.Pte.Accessed);
        long vpn = vma.VpnOf(0);
        sim.Oracle!.PageRead(f, vma.File!.Id, 0);
        sim.Writeback.SetPageDirty(f);
        sim.Cpus[1].ActiveMm = mm.Id;
        mm.CpuMask.Set(1);
        var writer = new Exec();
        writer.Reset(sim.Cpus[1], sim.UserTasks[1], 1_000, 1_000);
        var reclaimer = new Exec();
        reclaimer.Reset(sim.Cpus[0], sim.UserTasks[0], 2_000, 2_000);

        Assert.Equal(Hardware.Mmu.Access.Filled, sim.Mmu.Touch(writer, mm, vpn, write: true)); // cached, dirty, writable
        sim.Rmap.TryToUnmap(reclaimer, f, batchFlush: true);
        Assert.True(sim.UserTasks[0].Batch!.FlushRequired); // the flush is deferred
        sim.Writeback.ClearPageDirtyForIo(reclaimer, f);
        sim.Writeback.StartWriteback(reclaimer, f); // the flusher captures the page: no PTE left to clean
        Assert.Equal(Hardware.Mmu.Access.Hit, sim.Mmu.Touch(writer, mm, vpn, write: true)); // through the stale entry
        TestKit.DrainEvents(sim); // the I/O ends
        Assert.Equal(0, sim.Oracle.LostWrites);

        mem.LruAddHead(z, f, active: false);
        SimTask task = sim.UserTasks[0];
        using IEnumerator<Yield> reclaim = sim.Vmscan.TryToFreePages(reclaimer, task, 0).GetEnumerator();
        int steps = 0;
        while (reclaim.MoveNext() && (mem.Pages[f].Flags & Kernel.Mm.PageFlags.Buddy) == 0)
        {
            Assert.True(++steps < 100);
        }

        Assert.Equal(1, sim.Oracle.LostWrites);
        Violation v = sim.Oracle.Violations.Single(x => x.Kind == "lost_write");
        Assert.Equal(f, v.Frame);
        Assert.Contains("through a stale TLB entry", v.Detail, StringComparison.Ordinal);
        Assert.Contains("deferred the flush (rfc-pfn32)", v.Window, StringComparison.Ordinal);
    }

    /// <summary>
    /// kswapd writes out a dirty page that a writer on another CPU still caches writable and dirty,
    /// on a ramdisk (the write completes inside pageout, so the page is freed in the same pass).
    /// The page got there the way the kernel gets it there: the writer's store dirtied it; a
    /// read(2) of it twice (mark_page_accessed) activated it and cleared PG_referenced;
    /// shrink_active_list cleared the accessed bit and moved it to the inactive list; the writer's
    /// stores keep hitting its cached entry, so at the tail it looks idle (PAGEREF_RECLAIM) and,
    /// with ZONE_DIRTY, kswapd unmaps it with the flush deferred and calls pageout(). One more
    /// store goes to the page between pageout() and the end of shrink_page_list. Returns the
    /// oracle's lost writes.
    /// </summary>
    private static long PageoutWhileAWriterCachesTheEntry(Sim sim, out bool storeLanded)
    {
        Kernel.Mm.Memory mem = sim.Memory;
        Kernel.Mm.Zone z = mem.Zones[0];
        var (mm, vma, f) = KernelTests.MapOnePage(sim, 0, Kernel.Mm.Pte.Write, syncIo: true);
        long vpn = vma.VpnOf(0);
        Assert.NotEqual(vpn, f); // so that v1's INVLPG of the PFN cannot hit the user mapping by chance
        sim.Oracle!.PageRead(f, vma.File!.Id, 0);
        sim.Cpus[1].ActiveMm = mm.Id;
        mm.CpuMask.Set(1);
        var writer = new Exec();
        writer.Reset(sim.Cpus[1], sim.UserTasks[1], 1_000, 1_000);
        SimTask kswapd = sim.Kswapd[0];
        var reclaim = new Exec();
        reclaim.Reset(sim.Cpus[0], kswapd, 2_000, 2_000);

        Assert.Equal(Hardware.Mmu.Access.Filled, sim.Mmu.Touch(writer, mm, vpn, write: true)); // the PTE's dirty and accessed bits set
        sim.Writeback.SetPageDirty(f); // do_wp_page's set_page_dirty
        mem.LruAddHead(z, f, active: false);
        sim.Swap.MarkPageAccessed(reclaim, f);
        sim.Swap.MarkPageAccessed(reclaim, f); // activated, PG_referenced cleared
        Assert.Equal(1, sim.Vmscan.ShrinkActiveList(reclaim, new int[1], z, 1)); // the accessed bit cleared, no TLB flush
        Assert.Equal(Hardware.Mmu.Access.Hit, sim.Mmu.Touch(writer, mm, vpn, write: true));
        while (z.NrFree > z.WmarkMin)
        {
            z.PopFree(); // memory is short, so kswapd reclaims
        }
        z.ZoneDirty = true; // as a batch of nothing but dirty pages leaves it

        using IEnumerator<Yield> shrink = sim.Vmscan.ShrinkInactiveList(reclaim, kswapd, 0, 32).GetEnumerator();
        Assert.True(shrink.MoveNext()); // isolate + shrink_page_list: unmap, pageout
        Assert.Equal(1, sim.VmStat[Observe.VmEvent.nr_vmscan_write]);
        storeLanded = sim.Mmu.Touch(writer, mm, vpn, write: true) == Hardware.Mmu.Access.Hit;
        Assert.True(shrink.MoveNext()); // end of shrink_page_list: flush, then free
        Assert.NotEqual(Kernel.Mm.PageFlags.None, mem.Pages[f].Flags & Kernel.Mm.PageFlags.Buddy);
        return sim.Oracle.LostWrites;
    }

    private static RunConfig ScenarioConfig(string policy) =>
        RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: policy, oracle: true);

    [Fact]
    public void FlushBeforePageoutKeepsTheLastStoresOfAWriterThatCachesTheEntry()
    {
        // Linux 4.3's try_to_unmap_flush_dirty flushes the writer's entry first: its next store
        // faults instead of landing after the capture.
        var sim = new Sim(ScenarioConfig("linux-4.3"));
        Assert.Equal(0, PageoutWhileAWriterCachesTheEntry(sim, out bool landed));
        Assert.False(landed);
        Assert.Empty(sim.Oracle!.Violations);
    }

    [Fact]
    public void RfcAsPostedLosesTheStoreDespiteItsFlushBeforePageout()
    {
        // v1 calls try_to_unmap_flush before pageout too, but its IPI handler invalidates the
        // linear address pfn << PAGE_SHIFT, not the writer's mapping: the store lands after the
        // capture and is lost when the page is freed.
        var sim = new Sim(ScenarioConfig("rfc-pfn32"));
        Assert.Equal(1, PageoutWhileAWriterCachesTheEntry(sim, out bool landed));
        Assert.True(landed);
        Assert.Equal(1, sim.VmStat[Observe.VmEvent.nr_tlb_remote_flush_received]); // the IPI was sent
        Assert.Equal("lost_write", Assert.Single(sim.Oracle!.Violations).Kind);
    }

    [Fact]
    public void MutationRemovingTheFlushBeforePageoutIsCaught()
    {
        var sim = new Sim(ScenarioConfig("linux-4.3"), new Linux43WithoutFlushBeforePageout());
        long lost = PageoutWhileAWriterCachesTheEntry(sim, out bool landed);
        Assert.True(landed, "the store should go through the stale entry");
        Assert.True(lost == 1, "the oracle stayed silent about a store that pageout's capture missed");
        Violation v = sim.Oracle!.Violations.Single(x => x.Kind == "lost_write");
        Assert.Contains("deferred the flush (linux-4.3)", v.Window, StringComparison.Ordinal);
        Assert.Contains("through a stale TLB entry", v.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Linux43LetsAStoreThroughAfterMprotectReturned()
    {
        RunResult r = Runner.Run(ProtectRun("linux-4.3"));
        Assert.True(r.Safety!.WriteAfterProtect > 0);
        Violation v = r.Safety.First!;
        Assert.Equal("write_after_protect", v.Kind);
        Assert.Contains("deferred the flush (linux-4.3)", v.Window, StringComparison.Ordinal);
        Assert.Contains("mprotect(PROT_READ) returned", v.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("vanilla")]
    [InlineData("linux-4.13")]
    public void CorrectPoliciesNeverViolateOnTheMprotectRace(string policy)
    {
        for (ulong seed = 1; seed <= 3; seed++)
        {
            RunResult r = Runner.Run(ProtectRun(policy, seed));
            Assert.Equal(0, r.Safety!.Violations);
        }
    }

    [Fact]
    public void MutationRemovingFlushTlbBatchedPendingIsCaught()
    {
        var sim = new Sim(ProtectRun("linux-4.13"), new Linux413WithoutBatchedPending());
        sim.Run();
        Assert.True(sim.Oracle!.WritesAfterProtect > 0, "the oracle stayed silent about stores after mprotect returned");
    }

    [Fact]
    public void WriteAfterProtectReplayShowsTheDeferredUnmapTheMprotectAndTheStore()
    {
        var sim = new Sim(ProtectRun("linux-4.3", stop: true));
        sim.Run();
        Violation v = Assert.Single(sim.Oracle!.Violations);
        var history = sim.Oracle.Log.Relevant(v.Frame, 100).ToList();
        int unmap = history.FindLastIndex(e => e.Contains("flush deferred", StringComparison.Ordinal));
        int protect = history.FindLastIndex(e => e.Contains("mprotect(PROT_READ) of", StringComparison.Ordinal));
        int violation = history.FindLastIndex(e => e.Contains("VIOLATION write_after_protect", StringComparison.Ordinal));
        Assert.True(unmap >= 0 && unmap < protect && protect < violation, string.Join("\n", history));
    }

    /// <summary>The documented configuration: 2 nodes x 4 CPUs, 256 MiB, lru-file-mmap-write.</summary>
    private static RunConfig WriteRun(string policy, ulong seed = 1, bool stop = false, string? stopOn = null) =>
        RunConfig.Create(machine: "small-2node", scaleDivisor: 16, workload: "lru-file-mmap-write", policy: policy, seed: seed, stopOnViolation: stop, stopOnKind: stopOn);

    [Fact]
    public void RfcAsPostedLosesWritesAndAccessesFreedFramesOnTheWriteWorkload()
    {
        RunResult r = Runner.Run(WriteRun("rfc-pfn32"));
        Assert.NotNull(r.Safety);
        Assert.True(r.Safety!.StaleAccessAfterFree > 0);
        Assert.True(r.Safety.LostWrite > 0);
        Violation v = r.Safety.First!;
        Assert.Equal("stale_access_after_free", v.Kind);
        Assert.Contains("deferred the flush (rfc-pfn32)", v.Window, StringComparison.Ordinal);
        Assert.Contains("shootdown run --config RUN.json --stop-on-violation stale_access_after_free", v.Replay, StringComparison.Ordinal);
    }

    [Fact]
    public void StoppingOnALostWriteShowsTheCaptureTheStaleStoreAndTheFree()
    {
        var sim = new Sim(WriteRun("rfc-pfn32", stopOn: "lost_write"));
        sim.Run();
        Assert.True(sim.Stopped);
        Violation v = sim.Oracle!.StoppedBy!;
        Assert.Equal("lost_write", v.Kind);
        Assert.Equal(1, sim.Oracle.LostWrites);
        Assert.Contains("--stop-on-violation lost_write", v.Replay, StringComparison.Ordinal);
        Assert.Contains("deferred the flush (rfc-pfn32)", v.Window, StringComparison.Ordinal);
        AssertLostWriteHistory(sim.Oracle, v);
    }

    /// <summary>The frame's history must show writeback capturing it, a store through a stale entry after that, and the free.</summary>
    private static void AssertLostWriteHistory(Safety.Oracle oracle, Violation v)
    {
        var history = oracle.Log.Relevant(v.Frame, 200).ToList();
        int capture = history.FindLastIndex(e => e.Contains("writeback start", StringComparison.Ordinal));
        int store = history.FindLastIndex(e => e.Contains("through a stale TLB entry", StringComparison.Ordinal) && !e.Contains("VIOLATION", StringComparison.Ordinal));
        int free = history.FindLastIndex(e => e.Contains("freed by", StringComparison.Ordinal));
        int violation = history.FindLastIndex(e => e.Contains("VIOLATION lost_write", StringComparison.Ordinal));
        Assert.True(capture >= 0 && capture < store && store < free && free <= violation, string.Join("\n", history));
    }

    [Fact]
    public void StoppingOnAnUnknownKindIsRejected()
    {
        var e = Assert.Throws<Hardware.ConfigException>(() => WriteRun("rfc-pfn32", stopOn: "lost_writes"));
        Assert.Contains("lost_write, stale_access_after_free, write_after_protect", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("vanilla")]
    [InlineData("linux-4.3")]
    [InlineData("linux-4.13")]
    public void CorrectPoliciesNeverViolateOnTheWriteWorkload(string policy)
    {
        for (ulong seed = 1; seed <= 3; seed++)
        {
            RunResult r = Runner.Run(WriteRun(policy, seed));
            Assert.Equal(0, r.Safety!.Violations);
        }
    }

    [Fact]
    public void MutationRemovingFlushBeforeFreeIsCaught()
    {
        var sim = new Sim(WriteRun("linux-4.3"), new Linux43WithoutFlushBeforeFree());
        sim.Run();
        Assert.True(sim.Oracle!.StaleAccessesAfterFree > 0, "the oracle stayed silent about pages freed before their flush");
    }

    [Fact]
    public void StopOnViolationReplaysTheSameFirstViolationWithItsHistory()
    {
        var first = new Sim(WriteRun("rfc-pfn32", stop: true));
        first.Run();
        var again = new Sim(WriteRun("rfc-pfn32", stop: true));
        again.Run();
        Assert.True(first.Stopped);
        Violation a = first.Oracle!.Violations[0], b = again.Oracle!.Violations[0];
        Assert.Equal(a, b);
        Assert.Single(first.Oracle.Violations);
        var history = first.Oracle.Log.Relevant(a.Frame, 50).ToList();
        // The replay shows the deferred unmap, the free, and the access through the stale entry.
        Assert.Contains(history, e => e.Contains("flush deferred", StringComparison.Ordinal));
        Assert.Contains(history, e => e.Contains("freed by", StringComparison.Ordinal));
        Assert.Contains(history, e => e.Contains("VIOLATION stale_access_after_free", StringComparison.Ordinal));
        var whole = new Sim(WriteRun("rfc-pfn32"));
        whole.Run();
        Assert.True(first.Now < whole.LastExit / 2, $"stopped at {first.Now} ns, the whole run ends at {whole.LastExit} ns");
    }

    [Fact]
    public void TheOracleIsOffForTheReadWorkloadByDefaultAndSilentWhenOn()
    {
        RunResult off = Runner.Run(RunConfig.Create(machine: "tiny", scaleDivisor: 4));
        Assert.Null(off.Safety);
        RunResult on = Runner.Run(RunConfig.Create(machine: "tiny", scaleDivisor: 4, policy: "rfc-pfn32", oracle: true));
        Assert.Equal(0, on.Safety!.Violations);
    }

    [Fact]
    public void StopOnViolationWithoutTheOracleIsRejected()
    {
        Assert.Throws<Hardware.ConfigException>(() => RunConfig.Create(oracle: false, stopOnViolation: true));
    }

    [Fact]
    public void PropertyCorrectPoliciesNeverViolateOnRandomSmallMachines()
    {
        Gen.Select(Gen.Int[1, 2], Gen.Int[2, 5], Gen.Int[0, 2], Gen.ULong[1, 1_000_000], Gen.Int[0, 4])
            .Sample((nodes, cpus, memIdx, seed, pick) =>
            {
                long mem = new[] { 48L, 64L, 96L }[memIdx] << 20;
                if (nodes * cpus < 3)
                {
                    cpus = 3; // the storing workloads need three CPUs
                }
                // linux-4.3 is correct on the write workload only: mprotect-race exists to show its race.
                var (workload, policy) = new[]
                {
                    ("lru-file-mmap-write", "vanilla"), ("lru-file-mmap-write", "linux-4.3"), ("lru-file-mmap-write", "linux-4.13"),
                    ("mprotect-race", "vanilla"), ("mprotect-race", "linux-4.13"),
                }[pick];
                var cfg = RunConfig.Create(machine: "tiny", nodes: nodes, cpusPerNode: cpus, memoryBytes: mem * nodes / 2 + (mem / 2),
                    workload: workload, policy: policy, seed: seed);
                RunResult r = Runner.Run(cfg);
                Assert.True(r.Safety!.Violations == 0, $"{policy} violated {workload} on {nodes}x{cpus} CPUs, seed {seed}: {r.Safety.First?.Detail}");
            }, iter: 8, threads: 1);
    }

    [Fact]
    public void PropertyEveryWriteAfterProtectIsReal()
    {
        // For random seeds of linux-4.3 on mprotect-race, the frame's history must show the deferred
        // unmap, then mprotect returning, then the store through the stale entry.
        Gen.ULong[1, 1_000_000].Sample(seed =>
        {
            var sim = new Sim(ProtectRun("linux-4.3", seed, stop: true));
            sim.Run();
            foreach (Violation v in sim.Oracle!.Violations)
            {
                var history = sim.Oracle.Log.Relevant(v.Frame, 100).ToList();
                int unmap = history.FindLastIndex(e => e.Contains("flush deferred", StringComparison.Ordinal));
                int protect = history.FindLastIndex(e => e.Contains("mprotect(PROT_READ) of", StringComparison.Ordinal));
                int store = history.FindLastIndex(e => e.Contains("VIOLATION write_after_protect", StringComparison.Ordinal));
                Assert.True(unmap >= 0 && unmap < protect && protect < store, string.Join("\n", history));
            }
        }, iter: 3, threads: 1);
    }

    [Fact]
    public void PropertyEveryLostWriteIsReal()
    {
        // For random seeds of the RFC as posted, the first lost write's frame history must show the
        // capture, a store through a stale entry after it, and the free of the clean page.
        Gen.ULong[1, 1_000_000].Sample(seed =>
        {
            var sim = new Sim(WriteRun("rfc-pfn32", seed, stopOn: "lost_write"));
            sim.Run();
            Violation v = sim.Oracle!.StoppedBy ?? throw new InvalidOperationException($"seed {seed}: no lost write");
            AssertLostWriteHistory(sim.Oracle, v);
        }, iter: 3, threads: 1);
    }

    [Fact]
    public void PropertyEveryReportedViolationIsReal()
    {
        // For random seeds of the flawed RFC, each reported violation's frame history must show the
        // stale TLB entry's origin (a deferred unmap) and the access through it.
        Gen.ULong[1, 1_000_000].Sample(seed =>
        {
            var sim = new Sim(WriteRun("rfc-pfn32", seed, stop: true));
            sim.Run();
            foreach (Violation v in sim.Oracle!.Violations)
            {
                var history = sim.Oracle.Log.Relevant(v.Frame, 100).ToList();
                Assert.Contains(history, e => e.Contains("cleared by", StringComparison.Ordinal) && e.Contains("flush deferred", StringComparison.Ordinal));
                Assert.Contains(history, e => e.Contains("VIOLATION", StringComparison.Ordinal));
            }
        }, iter: 3, threads: 1);
    }
}
