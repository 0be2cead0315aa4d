using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>mm/truncate.c and the case script's rm that ends lru-file-mmap-read.</summary>
public class TruncateTests
{
    [Fact]
    public void TruncateFreesEveryPageLeavesHeldPagesToItsSecondPassAndOrphansAnotherCpusPagevec()
    {
        Sim sim = new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla"));
        Zone z = sim.Memory.Zones[0];
        AddressSpace file = sim.CreateFile("removed", 64);
        int[] frames = TestKit.CachePages(sim, file, 40);
        // Page 5 is held by a reclaimer (isolated); page 7 still waits in CPU 3's lru_add pagevec.
        sim.Memory.LruDel(z, frames[5]);
        sim.Memory.Pages[frames[5]].Flags |= PageFlags.Isolated;
        sim.Memory.LruDel(z, frames[7]);
        sim.Swap.LruCacheAdd(TestKit.ExecOn(sim, 3), frames[7]);

        SimTask task = sim.UserTasks[0];
        using var runner = new ProcessRunner(sim.Truncate.TruncateInodePagesFinal(file));
        int steps = 0;
        bool slept = false;
        while (true)
        {
            sim.Exec.Reset(sim.Cpus[0], task, steps * 100_000L, steps * 100_000L);
            if (!runner.MoveNext())
            {
                break;
            }
            Assert.True(++steps < 100, "truncate did not end");
            if (runner.Current == Yield.Sleep)
            {
                // lock_page waits: the reclaimer puts the page back on its list, then truncate takes it.
                Assert.Equal(1, file.PageCache.Count);
                slept = true;
                sim.Memory.Pages[frames[5]].Flags &= ~PageFlags.Isolated;
                sim.Memory.LruAddHead(z, frames[5], active: false);
            }
        }
        Assert.True(slept, "the held page was not left to the second pass");
        Assert.Equal(0, file.PageCache.Count);
        Assert.Equal(0, z.InactiveFile.Count);
        Assert.Equal(40, file.TreeLock.Acquisitions); // one delete_from_page_cache per page
        Assert.All(frames.Where(f => f != frames[7]), f => Assert.Equal(PageFlags.Free, sim.Memory.Pages[f].Flags & PageFlags.Free));
        Assert.Equal(39, sim.Truncate.PagesTruncated);
        // Page 7's last reference is CPU 3's pagevec: freed when that pagevec drains.
        Assert.Equal(PageFlags.Orphaned, sim.Memory.Pages[frames[7]].Flags & (PageFlags.Orphaned | PageFlags.Free | PageFlags.Lru));
        sim.Swap.LruAddDrain(TestKit.ExecOn(sim, 3));
        Assert.Equal(PageFlags.Free, sim.Memory.Pages[frames[7]].Flags & (PageFlags.Orphaned | PageFlags.Free | PageFlags.Lru));
        Assert.Equal(0, z.InactiveFile.Count);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AnOrphanedPagevecPageTakesLruLocksLineBackOnlyWithoutMemcg(bool memcg)
    {
        // __pagevec_lru_add puts a truncated page on its list and release_pages takes it off again:
        // two writes to the list head, which shares lru_lock's line only when the lists in use are
        // struct zone's (no memory cgroups). A drain that had to wait pays a transfer for each.
        Sim sim = new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla",
            policyParams: new Policies.PolicyParams { Memcg = memcg }));
        Zone z = sim.Memory.Zones[0];
        int f = z.AllocBootPage();
        sim.Memory.Pages[f].Flags = PageFlags.Uptodate | PageFlags.Orphaned;
        Exec ex = TestKit.ExecOn(sim, 3);
        sim.Swap.LruCacheAdd(ex, f);
        z.LruLock.Hold(0, 0, 0, 10_000, sim.Lines, sim.Costs, out _); // CPU 0 holds it: CPU 3 waits
        sim.Swap.LruAddDrain(ex);
        Assert.Equal(PageFlags.Free, sim.Memory.Pages[f].Flags & (PageFlags.Orphaned | PageFlags.Free | PageFlags.Lru));
        Assert.Equal(1, z.LruLock.Contended);
        Assert.Equal(memcg ? 0 : 2 * sim.Lines.Transfer(0, 3), z.LruLock.StealNs);
    }

    [Fact]
    public void TruncateRefusesAPageStillMapped()
    {
        Sim sim = new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla"));
        var (_, vma, f) = KernelTests.MapOnePage(sim, 3, Pte.Accessed);
        sim.Memory.LruAddHead(sim.Memory.ZoneOf(f), f, active: false);
        sim.Exec.Reset(sim.Cpus[0], sim.UserTasks[0], 0, 0);
        var e = Assert.Throws<InvalidOperationException>(() => TestKit.RunToEnd(sim.Truncate.TruncateInodePagesFinal(vma.File!)));
        Assert.Contains("still mapped", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheCaseScriptsRmEndsTheRunWithEveryFilesPageCacheFreed()
    {
        RunConfig cfg = RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: "vanilla");
        var sim = new Sim(cfg);
        sim.Run();
        RunResult r = RunResult.From(sim, 1);
        SimTask rm = sim.UserTasks.Single(t => t.Comm == "rm");
        long lastReader = sim.UserTasks.Where(t => t != rm).Max(t => t.ExitedAt);
        // rm starts when the last reader has exited (the script's wait) and the test ends with it.
        Assert.True(rm.ExitedAt > lastReader);
        Assert.Equal(sim.LastExit, rm.ExitedAt);
        Assert.Equal(rm.ExitedAt / 1e9, r.ElapsedS);
        Assert.All(sim.Files, f => Assert.Equal(0, f.PageCache.Count));
        Assert.All(sim.Memory.Zones, z => Assert.Equal(0, z.InactiveFile.Count + z.ActiveFile.Count));
        Assert.All(sim.Cpus, c => Assert.Equal(0, c.PagevecCount)); // exit_mmap drained each reader's pagevec
        Assert.True(sim.Truncate.PagesTruncated > sim.Memory.NrFrames / 2, $"{sim.Truncate.PagesTruncated} of {sim.Memory.NrFrames} frames truncated");
        // rm's system time is the benchmark's (the case script's children are timed together).
        Assert.True(rm.SysNs > 0);
        Assert.True(r.SystemByPath["truncate"].SystemS * 1e9 >= rm.SysNs * 0.99);
        Assert.Equal(sim.Truncate.PagesTruncated, r.Truncate!.Pages);
        // rm's first step starts when the last reader has gone, after its context switch.
        Assert.InRange(r.Truncate.StartS, lastReader / 1e9, (lastReader + sim.Costs.ContextSwitchNs) / 1e9);
        Assert.Contains("\"truncate\":{\"pages\":", r.ToJson().Replace(" ", "").Replace("\n", ""), StringComparison.Ordinal);
        long readersSys = sim.UserTasks.Where(t => t != rm).Sum(t => t.SysNs);
        Assert.Equal((readersSys + rm.SysNs) / 1e9, r.BenchmarkSystemS, 6);
    }

    [Fact]
    public void RmWokenOntoTheCpuItsLastReaderLeftRunsOneStepAtATime()
    {
        // The last reader exiting on rm's CPU (0): the wake-up from that exit once gave CPU 0 a
        // second chain of step events, and rm ran twice as fast as its work. Which seeds end so
        // moves with the cost model: the test takes the first of seeds 1..20, on two CPUs, then on four, that does.
        Sim? found = null;
        for (int k = 0; k < 40 && found is null; k++)
        {
            ulong seed = (ulong)(k % 20 + 1);
            var s = new Sim(RunConfig.Create(machine: "gorman-1node", cpusPerNode: k < 20 ? 2 : 4, scaleDivisor: 32, policy: "vanilla", seed: seed));
            s.Run();
            SimTask r0 = s.UserTasks.Single(t => t.Comm == "rm");
            if (s.UserTasks.Where(t => t != r0).MaxBy(t => t.ExitedAt)!.HomeCpu.Id == 0)
            {
                found = s;
            }
        }
        Assert.True(found is not null, "on none of seeds 1..20 on two or four CPUs did the last reader exit on rm's CPU");
        Sim sim = found;
        RunResult r = RunResult.From(sim, 1);
        double span = r.ElapsedS - r.Truncate!.StartS;
        Assert.Equal(span, r.Truncate.SystemS, 6); // one task on one CPU: its system time is its span
        long elapsed = sim.LastExit;
        Assert.All(sim.Cpus, c => Assert.True(c.UserNs + c.SysNs <= elapsed, $"CPU {c.Id} busy {c.UserNs + c.SysNs} ns in {elapsed} ns"));
    }
}

public class SparseTruncateTests
{
    [Fact]
    public void SparseTruncateReadsEachFileOnceThenFreesItAllWithoutReclaim()
    {
        var sim = new Sim(RunConfig.Create(machine: "gorman-1node", scaleDivisor: 64, workload: "sparse-truncate"));
        sim.Run();
        RunResult r = RunResult.From(sim, 1);
        long frames = sim.Memory.NrFrames;
        int files = (int)Math.Min(Shootdown.Workloads.SparseTruncate.MaxFiles, frames / 2 / Shootdown.Workloads.SparseTruncate.FilePages);
        Assert.Equal(files, sim.Files.Count);
        Assert.Equal((long)files * Shootdown.Workloads.SparseTruncate.FilePages, r.PagesRead);
        Assert.Equal(0, r.PagesReclaimed); // the files fit in half of memory
        Assert.Equal(r.PagesRead, r.Truncate!.Pages); // every page read is truncated, none before
        Assert.All(sim.Files, f => Assert.Equal(0, f.PageCache.Count));
        // One CPU throughout: the readers and rm all ran on CPU 0.
        Assert.All(sim.Cpus.Skip(1), c => Assert.Equal(0, c.UserNs + c.SysNs));
        // The cost per page is at least the kernel-path constants the path charges on cached lines
        // (README, "A published timing of the path says the LRU and free constants are too large"):
        // the radix-tree delete, the LRU unlink, the free, the buddy work, five locked operations
        // (get, trylock, unlock, put, tree_lock), lru_lock once per pagevec of 14 and zone->lock once
        // per pcp batch of 31 (568.1 ns with the defaults at 3.4 GHz), plus the struct page lines from DRAM
        // — at the lone thread's speed: CPU 0's sibling is idle throughout (CostModel.SmtThroughputPct).
        CostModel c = sim.MachineCosts.LoneThread();
        Assert.Equal(sim.Cpus[0].UserNs + sim.Cpus[0].SysNs, sim.Sched.LoneNs); // every step alone on its core
        double onCachedLines = c.RemoveMappingNs + c.LruPerPageNs + c.PageFreeNs + c.ZoneLockPerPageNs
            + 5 * c.LockAcquireNs + c.LockAcquireNs / 14.0 + c.LockAcquireNs / 31.0;
        double perPage = r.Truncate.SystemS / r.Truncate.Pages * 1e9;
        Assert.InRange(perPage, onCachedLines, 800);
    }

    [Fact]
    public void SparseTruncateRefusesAMachineTooSmallForOneFile()
    {
        var e = Assert.Throws<ConfigException>(() => new Sim(RunConfig.Create(machine: "tiny", memoryBytes: 4L << 20, workload: "sparse-truncate")));
        Assert.Contains("memory too small for sparse-truncate", e.Message, StringComparison.Ordinal);
    }
}
