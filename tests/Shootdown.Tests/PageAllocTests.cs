using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>The buddy allocator, per-CPU pagesets, drain_all_pages and throttle_direct_reclaim (mm/page_alloc.c, mm/vmscan.c of 4.0).</summary>
public class PageAllocTests
{
    private static Sim SmallSim() => new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16));

    /// <summary>Pages in free blocks of the zone (sum over orders of blocks x 2^order).</summary>
    private static long BuddyPages(Zone z)
    {
        long n = 0;
        for (int o = 0; o < Zone.MaxOrder; o++)
        {
            n += z.NrFreeArea[o] << o;
        }
        return n;
    }

    [Fact]
    public void ZoneStatisticsCountEveryAllocationOnceByNodeAndOnceByCpu()
    {
        // Two nodes under reclaim: some allocations fall back to the other node's zones.
        RunResult two = Runner.Run(RunConfig.Create(machine: "small-2node", scaleDivisor: 16));
        var v = two.Vmstat;
        Assert.True(v["numa_hit"] > 0 && v["numa_miss"] > 0, $"hit {v["numa_hit"]}, miss {v["numa_miss"]}");
        Assert.Equal(v["numa_hit"] + v["numa_miss"], v["numa_local"] + v["numa_other"]);
        // Readers allocate for their own node (the preferred one is the CPU's): hit is local.
        Assert.Equal(v["numa_hit"], v["numa_local"]);
        // Every page the readers read was allocated once.
        Assert.True(v["numa_hit"] + v["numa_miss"] >= two.PagesRead);
        // One node: nothing is foreign.
        RunResult one = Runner.Run(RunConfig.Create(machine: "tiny", scaleDivisor: 4));
        Assert.True(one.Vmstat["numa_hit"] > 0);
        Assert.Equal(0, one.Vmstat["numa_miss"] + one.Vmstat["numa_foreign"] + one.Vmstat["numa_other"]);
    }

    [Theory]
    [InlineData(1L << 20, 31, 186)] // 4 GiB zone: 1/1024 capped at 512 KiB worth (128), /4 = 32, 48 -> 32 - 1
    [InlineData(32768, 7, 42)] // 128 MiB: 32, /4 = 8, 12 -> 8 - 1
    [InlineData(16384, 3, 18)] // 64 MiB: 16, /4 = 4, 6 -> 4 - 1
    [InlineData(1024, 1, 0)] // 4 MiB: 1, /4 = 0 -> 1, 1 -> 1 - 1 = 0: batch max(1, 0), high 6 x 0
    public void PcpBatchAndHighAreZoneBatchsizeAndSixTimesIt(long managedPages, int batch, int high)
    {
        var z = new Zone(0, 0, (int)managedPages, 1, 1, 1);
        Assert.Equal(batch, z.PcpBatch);
        Assert.Equal(high, z.PcpHigh);
    }

    [Fact]
    public void BootLeavesEveryFrameInTheBuddyListsAndCountsThem()
    {
        var mem = new Memory(2, 4096 + 512 + 3, 1024, nrCpus: 4);
        foreach (Zone z in mem.Zones)
        {
            Assert.Equal(z.Frames, z.NrFree);
            Assert.Equal(z.NrFree, BuddyPages(z));
            Assert.Equal(4, z.NrFreeArea[10]); // 4096 frames: four blocks of 1024
            Assert.Equal(1, z.NrFreeArea[9]);
            Assert.Equal(1, z.NrFreeArea[1]);
            Assert.Equal(1, z.NrFreeArea[0]);
            Assert.Equal(6 * Zone.BatchSize(z.Frames), z.PcpHigh);
        }
    }

    [Fact]
    public void AllocationsComeFromThePcpListRefilledOneBatchAtATime()
    {
        Sim sim = SmallSim();
        Zone z = sim.Memory.Zones[0];
        Exec ex = TestKit.ExecOn(sim, 0);
        long free = z.NrFree;
        var dest = new int[1];
        Assert.Null(sim.PageAlloc.AllocPages(ex, sim.UserTasks[0], 0, 1, dest));
        // rmqueue_bulk moved a batch from the buddy lists; one page left the pcp list.
        Assert.Equal(free - z.PcpBatch, z.NrFree);
        Assert.Equal(z.PcpBatch - 1, z.PcpCount[0]);
        Assert.Equal(PageFlags.None, sim.Memory.Pages[dest[0]].Flags);
        Assert.Equal(1, z.Lock.Acquisitions);
        // The next batch - 1 allocations do not take zone->lock.
        for (int i = 1; i < z.PcpBatch; i++)
        {
            Assert.Null(sim.PageAlloc.AllocPages(ex, sim.UserTasks[0], 0, 1, dest));
        }
        Assert.Equal(1, z.Lock.Acquisitions);
        Assert.Equal(0, z.PcpCount[0]);
    }

    [Fact]
    public void FreesGoToThePcpListUntilHighThenABatchReturnsToTheBuddyAndMerges()
    {
        Sim sim = SmallSim();
        Zone z = sim.Memory.Zones[0];
        Exec ex = TestKit.ExecOn(sim, 1);
        long blocksBefore = z.NrFreeArea[Zone.MaxOrder - 1];
        long free0 = z.NrFree;
        // Take a whole aligned max-order block's worth, then give it back cold.
        int n = 1 << (Zone.MaxOrder - 1);
        var pages = new int[n];
        var one = new int[1];
        for (int i = 0; i < n; i++)
        {
            Assert.Null(sim.PageAlloc.AllocPages(ex, sim.UserTasks[1], 0, 1, one));
            pages[i] = one[0];
        }
        long lockBefore = z.Lock.Acquisitions;
        int pcpBefore = z.PcpCount[1];
        sim.PageAlloc.FreePages(ex, pages.AsSpan(0, z.PcpHigh - pcpBefore - 1), cold: true);
        Assert.Equal(lockBefore, z.Lock.Acquisitions); // below pcp->high: no zone->lock
        Assert.Equal(z.PcpHigh - 1, z.PcpCount[1]);
        sim.PageAlloc.FreePages(ex, pages.AsSpan(z.PcpHigh - pcpBefore - 1, 1), cold: true);
        Assert.Equal(lockBefore + 1, z.Lock.Acquisitions); // reached high: one free_pcppages_bulk
        Assert.Equal(z.PcpHigh - z.PcpBatch, z.PcpCount[1]);
        sim.PageAlloc.FreePages(ex, pages.AsSpan(z.PcpHigh - pcpBefore), cold: false);
        Assert.All(pages, f => Assert.NotEqual(PageFlags.None, sim.Memory.Pages[f].Flags & PageFlags.Free));
        // Draining every list gives every page back; buddies merge into the blocks they came from.
        sim.PageAlloc.DrainAllPages(ex);
        Assert.All(sim.Memory.Zones, zz => Assert.All(zz.PcpCount, c => Assert.Equal(0, c)));
        Assert.Equal(free0, z.NrFree);
        Assert.Equal(z.NrFree, BuddyPages(z));
        Assert.Equal(blocksBefore, z.NrFreeArea[Zone.MaxOrder - 1]);
    }

    [Fact]
    public void WatermarksCountBuddyPagesNotPcpPages()
    {
        Sim sim = SmallSim();
        Zone z = sim.Memory.Zones[0];
        Exec ex = TestKit.ExecOn(sim, 0);
        var one = new int[1];
        Assert.Null(sim.PageAlloc.AllocPages(ex, sim.UserTasks[0], 0, 1, one));
        long free = z.NrFree;
        sim.PageAlloc.FreePages(ex, one, 1, cold: true);
        Assert.Equal(free, z.NrFree); // on the pcp list: not NR_FREE_PAGES
        Assert.Equal(z.PcpBatch, z.PcpCount[0]);
    }

    [Fact]
    public void DrainAllPagesInterruptsEveryOtherCpuWithPcpPagesAsCallFunctionIpis()
    {
        Sim sim = SmallSim();
        var one = new int[1];
        foreach (int cpu in new[] { 0, 2, 3 })
        {
            Exec e = TestKit.ExecOn(sim, cpu);
            TestKit.Busy(sim, cpu);
            Assert.Null(sim.PageAlloc.AllocPages(e, sim.UserTasks[cpu], 0, 1, one));
        }
        Exec ex = TestKit.ExecOn(sim, 0);
        long t0 = ex.Now;
        sim.PageAlloc.DrainAllPages(ex);
        Assert.Equal(0, sim.Cpus[0].CallFunctionIrqs); // its own lists are drained without an IPI
        Assert.Equal(1, sim.Cpus[2].CallFunctionIrqs);
        Assert.Equal(1, sim.Cpus[3].CallFunctionIrqs);
        Assert.Equal(0, sim.Cpus[1].CallFunctionIrqs); // nothing on its lists
        Assert.Equal(1, sim.Cpus[2].OtherCallFunctionIrqs);
        Assert.Equal(0, sim.Cpus[2].TlbShootdowns);
        Assert.True(ex.IpiWait > 0 && ex.Now > t0); // on_each_cpu_mask waits for every handler
        Assert.All(sim.Memory.Zones, z => Assert.All(z.PcpCount, c => Assert.Equal(0, c)));
    }

    [Fact]
    public void ADirectReclaimerBelowHalfTheMinWatermarkSleepsUntilKswapdRestoresIt()
    {
        Sim sim = SmallSim();
        Zone z = sim.Memory.Zones[0];
        var taken = new List<int>();
        while (z.NrFree > z.WmarkMin / 2)
        {
            taken.Add(z.AllocBootPage());
        }
        SimTask reader = sim.UserTasks[0];
        Exec ex = TestKit.ExecOn(sim, 0, task: reader);
        using IEnumerator<Yield> reclaim = new ProcessRunner(sim.Vmscan.TryToFreePages(ex, reader, 0));
        Assert.True(reclaim.MoveNext());
        Assert.Equal(Yield.Sleep, reclaim.Current); // throttled: asleep on pfmemalloc_wait
        Assert.Equal(1, sim.VmStat[VmEvent.pgscan_direct_throttle]);
        Assert.Contains(reader, z.PfmemallocWait);
        Assert.NotEqual(TaskState.Sleeping, sim.Kswapd[0].State); // kswapd was woken
        Assert.Equal(0, sim.VmStat[VmEvent.pgscan_direct]);
        Assert.Equal(0, sim.VmStat[VmEvent.allocstall]); // counted by do_try_to_free_pages, not reached yet
        // Woken while still below the reserve, it sleeps again.
        reader.State = TaskState.Runnable;
        z.PfmemallocWait.Clear();
        Assert.True(reclaim.MoveNext());
        Assert.Equal(Yield.Sleep, reclaim.Current);
        Assert.Contains(reader, z.PfmemallocWait);
        // kswapd brings the node back above the reserve and wakes the waiters.
        Exec kex = TestKit.ExecOn(sim, 1, task: sim.Kswapd[0]);
        sim.PageAlloc.FreePages(kex, taken.ToArray(), taken.Count, cold: true);
        sim.PageAlloc.DrainAllPages(kex);
        Assert.True(sim.Memory.NodeReserveOk(z.Node));
        reader.State = TaskState.Sleeping;
        sim.Vmscan.WakePfmemallocWaiters(kex.Now, z.Node);
        Assert.Empty(z.PfmemallocWait);
        Assert.NotEqual(TaskState.Sleeping, reader.State);
        // Woken with the watermark met, and no fatal signal pending: try_to_free_pages goes on
        // into do_try_to_free_pages (4.0 returns 1 without reclaiming only for a killed task).
        int steps = 0;
        while (reclaim.MoveNext())
        {
            Assert.True(++steps < 100_000);
        }
        Assert.Equal(1, sim.VmStat[VmEvent.allocstall]);
        Assert.Equal(1, sim.VmStat[VmEvent.pgscan_direct_throttle]);
    }

    [Fact]
    public void KernelThreadsAreNeverThrottled()
    {
        Sim sim = SmallSim();
        Zone z = sim.Memory.Zones[0];
        while (z.NrFree > z.WmarkMin / 2)
        {
            z.AllocBootPage();
        }
        SimTask kswapd = sim.Kswapd[1];
        Exec ex = TestKit.ExecOn(sim, 0, task: kswapd);
        TestKit.RunToEnd(sim.Vmscan.TryToFreePages(ex, kswapd, 0));
        Assert.Equal(0, sim.VmStat[VmEvent.pgscan_direct_throttle]);
        Assert.Empty(z.PfmemallocWait);
    }
}
