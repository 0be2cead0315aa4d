using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>
/// mm/vmstat.c's per-CPU differentials (<see cref="ZoneStats"/>): Linux 4.0's thresholds, when an
/// update folds into the zone's and the global counter, and what the fold and the reads cost.
/// </summary>
public class VmstatTests
{
    private const long GiB = 1L << 30;

    /// <summary>Two nodes of <paramref name="cpusPerNode"/> CPUs, one zone each of <paramref name="zonePages"/> pages with the given watermarks.</summary>
    private static ZoneStats TwoNodes(int cpusPerNode, int zonePages, long min, long low, out CacheLines lines, out CostModel costs)
    {
        costs = CostModel.Xeon2015;
        lines = new CacheLines(2, cpusPerNode, NumaDistance.Uniform(2), costs);
        Zone[] zones =
        [
            new Zone(0, 0, zonePages, min, low, low + min / 4, 2 * cpusPerNode) { Index = 0 },
            new Zone(1, zonePages, zonePages, min, low, low + min / 4, 2 * cpusPerNode) { Index = 1 },
        ];
        return new ZoneStats(zones, 2 * cpusPerNode, lines, costs);
    }

    [Fact]
    public void NormalThresholdFollowsCpusAndZoneSize()
    {
        // 2 x fls(48) x (1 + fls(16 GiB / 128 MiB)) = 2 x 6 x 9.
        Assert.Equal(108, ZoneStats.NormalThreshold(16 * GiB / 4096, 48));
        // 2 x fls(8) x (1 + fls(4 GiB / 128 MiB)) = 2 x 4 x 7.
        Assert.Equal(56, ZoneStats.NormalThreshold(4 * GiB / 4096, 8));
        // Capped at 125.
        Assert.Equal(125, ZoneStats.NormalThreshold(64 * GiB / 4096, 1024));
        // A zone under 128 MiB: 2 x fls(4) x 1.
        Assert.Equal(6, ZoneStats.NormalThreshold(16384, 4));
        // The threshold takes managed pages: a 16 GiB zone less its memmap (a 64th) is 126 units of
        // 128 MiB, fls 7, so 2 x 6 x 8 on 48 CPUs.
        Assert.Equal(4_128_768, ZoneStats.ManagedPages(16 * GiB / 4096));
        Assert.Equal(96, ZoneStats.NormalThreshold(ZoneStats.ManagedPages(16 * GiB / 4096), 48));
    }

    [Fact]
    public void PressureThresholdIsTheWatermarkGapOverTheCpus()
    {
        Assert.Equal(10, ZoneStats.PressureThreshold(512, 48));
        Assert.Equal(1, ZoneStats.PressureThreshold(5, 48));
        Assert.Equal(125, ZoneStats.PressureThreshold(100_000, 8));
    }

    [Fact]
    public void KswapdSwitchesTheNodesZonesToThePressureThresholdAndBack()
    {
        // 24 CPUs, 16 GiB zones (126 units managed): normal 2 x fls(24) x 8 = 80; min 2048, low
        // 2560: pressure 512 / 24 = 21.
        ZoneStats zs = TwoNodes(12, (int)(16 * GiB / 4096), 2048, 2560, out CacheLines lines, out _);
        Assert.Equal(80, zs.Threshold(0));
        long cost = zs.SetNodeThreshold(0, pressure: true, cpu: 0);
        Assert.Equal(21, zs.Threshold(0));
        Assert.Equal(80, zs.Threshold(1)); // the other node's kswapd sleeps on
        // It wrote every CPU's pageset of the zone: 11 lines from its own socket, 12 from the other.
        Assert.Equal(11 * lines.Transfer(1, 0) + 12 * lines.Transfer(12, 0), cost);
        Assert.Equal(0, zs.SetNodeThreshold(0, pressure: true, cpu: 0)); // no change, nothing written
        // Each CPU's next update fetches its pageset line back from kswapd's CPU, once.
        Assert.Equal(lines.Transfer(0, 13), zs.Mod(13, 0, ZoneStatItem.NrFilePages, 1));
        Assert.Equal(0, zs.Mod(13, 0, ZoneStatItem.NrFilePages, 1));
        Assert.Equal(0, zs.Mod(0, 0, ZoneStatItem.NrFilePages, 1)); // kswapd's own CPU
        Assert.Equal(lines.Transfer(0, 1), zs.Inc(1, 0, ZoneStatItem.NrFilePages));
        zs.SetNodeThreshold(0, pressure: false, cpu: 0);
        Assert.Equal(80, zs.Threshold(0));
    }

    [Fact]
    public void AZoneWithoutDriftMarkKeepsItsNormalThresholdUnderPressure()
    {
        // 4 CPUs, a 256 MiB zone (63/64 of it managed: 1 unit of 128 MiB): normal 2 x 3 x (1 + 1)
        // = 12; 4 x 12 = 48 is under the low-min gap of 128, so refresh_zone_stat_thresholds sets
        // no percpu_drift_mark and set_pgdat_percpu_threshold leaves the zone alone.
        ZoneStats zs = TwoNodes(2, 65536, 512, 640, out _, out _);
        Assert.Equal(12, zs.Threshold(0));
        Assert.Equal(0, zs.SetNodeThreshold(0, pressure: true, cpu: 0));
        Assert.Equal(12, zs.Threshold(0));
    }

    [Fact]
    public void ModFoldsWhenTheDifferentialPassesTheThresholdAndStartsAgainFromZero()
    {
        ZoneStats zs = TwoNodes(12, (int)(16 * GiB / 4096), 2048, 2560, out _, out _);
        int t = zs.Threshold(0);
        Assert.Equal(0, zs.Mod(0, 0, ZoneStatItem.NrInactiveFile, t)); // at the threshold: no fold
        Assert.True(zs.Mod(0, 0, ZoneStatItem.NrInactiveFile, 1) > 0);
        Assert.Equal(1, zs.Folds);
        Assert.Equal(0, zs.Mod(0, 0, ZoneStatItem.NrInactiveFile, -t));
        Assert.True(zs.Mod(0, 0, ZoneStatItem.NrInactiveFile, -1) > 0);
        // A batch larger than the threshold folds at once; another CPU's differential is its own.
        Assert.True(zs.Mod(1, 0, ZoneStatItem.NrIsolatedFile, t + 1) > 0);
        Assert.Equal(0, zs.Mod(2, 0, ZoneStatItem.NrIsolatedFile, t));
        Assert.Equal(3, zs.Folds);
    }

    /// <summary>The 1-based calls of <paramref name="update"/>, of <paramref name="calls"/>, that made a fold.</summary>
    private static int[] FoldsAt(ZoneStats zs, int calls, Func<long> update)
    {
        var at = new List<int>();
        for (int i = 1; i <= calls; i++)
        {
            long before = zs.Folds;
            update();
            if (zs.Folds > before)
            {
                at.Add(i);
            }
        }
        return [.. at];
    }

    [Fact]
    public void IncOverstepsByHalfTheThreshold()
    {
        ZoneStats zs = TwoNodes(12, (int)(16 * GiB / 4096), 2048, 2560, out _, out _);
        zs.SetNodeThreshold(0, pressure: true, cpu: 0);
        int t = zs.Threshold(0); // 21
        // The first fold at t + 1 increments; the differential restarts at -t/2, so the next comes
        // t + t/2 + 1 increments later. __dec_zone_state mirrors it.
        int[] at = FoldsAt(zs, 2 * t + t / 2 + 2, () => zs.Inc(3, 0, ZoneStatItem.NumaHit));
        Assert.Equal([t + 1, 2 * t + t / 2 + 2], at);
        int[] decAt = FoldsAt(zs, 2 * t + t / 2 + 2, () => zs.Dec(4, 0, ZoneStatItem.NrFilePages));
        Assert.Equal([t + 1, 2 * t + t / 2 + 2], decAt);
    }

    [Fact]
    public void AFoldIsTwoLockedAddsOnTheZonesAndTheGlobalLines()
    {
        ZoneStats zs = TwoNodes(12, (int)(16 * GiB / 4096), 2048, 2560, out CacheLines lines, out CostModel c);
        int t = zs.Threshold(1);
        // The first fold finds both lines in no cache: the zone's from its node's DRAM (node 1, seen
        // from CPU 12 on node 1: local), the global array's from node 0's (remote).
        long first = zs.Mod(12, 1, ZoneStatItem.NrFreePages, t + 1);
        Assert.Equal(2 * c.LockAcquireNs + c.DramLocalNs + c.DramRemoteNodeNs, first);
        // The next fold by a CPU of node 0 takes both lines from CPU 12, across the interconnect.
        long second = zs.Mod(0, 1, ZoneStatItem.NrFreePages, -(t + 1));
        Assert.Equal(2 * c.LockAcquireNs + 2 * lines.Transfer(12, 0), second);
        // A counter in another line of the same zone is another pair of lines.
        long third = zs.Mod(0, 1, ZoneStatItem.NrFilePages, t + 1);
        Assert.Equal(2 * c.LockAcquireNs + c.DramRemoteNodeNs + c.DramLocalNs, third);
        Assert.Equal(first + second + third, zs.FoldNs);
    }

    [Fact]
    public void ReadingTheFirstLineCostsATransferOnlyAfterAnotherCpuWroteIt()
    {
        ZoneStats zs = TwoNodes(12, (int)(16 * GiB / 4096), 2048, 2560, out CacheLines lines, out _);
        int t = zs.Threshold(0);
        Assert.Equal(0, zs.ReadLine0(5, 0)); // never written: nothing to fetch from another cache
        zs.Mod(0, 0, ZoneStatItem.NrAllocBatch, -(t + 1)); // CPU 0 writes line 0
        Assert.Equal(lines.Transfer(0, 13), zs.ReadLine0(13, 0));
        Assert.Equal(0, zs.ReadLine0(13, 0)); // still its copy
        Assert.Equal(0, zs.ReadLine0(0, 0)); // the writer's own
        zs.Mod(1, 0, ZoneStatItem.NrFilePages, t + 1); // line 1: line 0 untouched
        Assert.Equal(0, zs.ReadLine0(13, 0));
        zs.Mod(1, 0, ZoneStatItem.NrFreePages, t + 1); // line 0 again, by CPU 1
        Assert.Equal(lines.Transfer(1, 13), zs.ReadLine0(13, 0));
        Assert.Equal(lines.Transfer(0, 13) + lines.Transfer(1, 13), zs.ReadNs);
    }

    [Fact]
    public void TheLastWriterTakesItsLineBackFromTheCpusThatReadIt()
    {
        ZoneStats zs = TwoNodes(12, (int)(16 * GiB / 4096), 2048, 2560, out CacheLines lines, out CostModel c);
        int t = zs.Threshold(0);
        zs.Mod(0, 0, ZoneStatItem.NrFreePages, t + 1); // CPU 0 owns the zone's and the global line 0
        Assert.Equal(2 * c.LockAcquireNs, zs.Mod(0, 0, ZoneStatItem.NrFreePages, t + 1)); // still its own
        zs.ReadLine0(13, 0); // CPU 13, on the other node, reads it
        // The next fold by CPU 0 must invalidate CPU 13's copy of the zone's line.
        Assert.Equal(2 * c.LockAcquireNs + lines.Transfer(13, 0), zs.Mod(0, 0, ZoneStatItem.NrFreePages, t + 1));
        Assert.Equal(2 * c.LockAcquireNs, zs.Mod(0, 0, ZoneStatItem.NrFreePages, t + 1));
    }

    [Fact]
    public void PagesScannedKeepsWhatTheFoldsPutInTheZonesCounter()
    {
        ZoneStats zs = TwoNodes(12, (int)(16 * GiB / 4096), 2048, 2560, out _, out _);
        int t = zs.Threshold(0);
        zs.Mod(0, 0, ZoneStatItem.NrPagesScanned, t); // stays in CPU 0's differential
        Assert.Equal(0, zs.FoldedPagesScanned(0));
        zs.Mod(0, 0, ZoneStatItem.NrPagesScanned, 32); // folds t + 32
        Assert.Equal(t + 32, zs.FoldedPagesScanned(0));
        zs.Mod(1, 0, ZoneStatItem.NrPagesScanned, -(t + 32)); // free_pcppages_bulk's reset on CPU 1
        Assert.Equal(0, zs.FoldedPagesScanned(0));
    }

    [Fact]
    public void IsolationFoldsInsideTheLruLocksHold()
    {
        // shrink_inactive_list updates NR_INACTIVE_FILE, NR_ISOLATED_FILE and NR_PAGES_SCANNED by
        // the batch before it drops lru_lock, and putback_inactive_pages NR_ISOLATED_FILE again:
        // with a batch above the threshold (40 on small-2node's full-size zones) each folds, and
        // the folds lengthen the lock's hold by exactly their cost.
        Sim sim = TestKit.WithInactivePages(RunConfig.Create(machine: "small-2node", scaleDivisor: 1, policy: "vanilla",
            policyParams: new Policies.PolicyParams { SwapClusterMax = 64 }), 64);
        Zone z = sim.Memory.Zones[0];
        Assert.Equal(40, sim.ZoneStats.Threshold(z.Index));
        Exec ex = TestKit.ExecOn(sim, 0);
        TestKit.RunToEnd(sim.Vmscan.ShrinkInactiveList(ex, sim.UserTasks[0], 0, 64));
        CostModel c = sim.Costs;
        long isolation = 64 * (c.LruPerPageNs + c.DramLocalNs) + z.LruLock.DataLines * c.DramLocalNs;
        // Three first folds, each line from DRAM of node 0 (the zone's and the global array's), and
        // putback's fold on the NR_ISOLATED_FILE lines CPU 0 now holds.
        long folds = 3 * (2 * c.LockAcquireNs + 2 * c.DramLocalNs) + 2 * c.LockAcquireNs;
        Assert.Equal(isolation + folds, z.LruLock.HoldNs);
        Assert.Equal(64, sim.ZoneStats.FoldedPagesScanned(z.Index));
    }

    [Fact]
    public void TheFourNodeMachinesZonesGoToThePressureThresholdTheOneNodeMachinesNormalZoneDoesNot()
    {
        // The presets' own zones: on four sockets kswapd's pressure threshold is 10 (48 CPUs, a
        // 512-page gap between min and low); on one socket the drift of 8 CPUs cannot reach the gap
        // and the normal threshold stays. At a scale so small that the watermarks are capped (the
        // 4-node machine at 1/512), the thresholds are still the full-size zone's.
        var four = new Sim(RunConfig.Create(machine: "gorman-4node", scaleDivisor: 64, policy: "vanilla", seed: 1));
        Zone z4 = four.Memory.Zones[^1];
        Assert.Equal(96, four.ZoneStats.Threshold(z4.Index));
        four.ZoneStats.SetNodeThreshold(z4.Node, pressure: true, cpu: 0);
        Assert.Equal(10, four.ZoneStats.Threshold(z4.Index));
        var one = new Sim(RunConfig.Create(machine: "gorman-1node", scaleDivisor: 32, policy: "vanilla", seed: 1));
        Zone z1 = one.Memory.Zones[^1];
        int normal = one.ZoneStats.Threshold(z1.Index);
        one.ZoneStats.SetNodeThreshold(z1.Node, pressure: true, cpu: 0);
        Assert.Equal(normal, one.ZoneStats.Threshold(z1.Index));
        Assert.Equal(56, normal);
        var tiny = new Sim(RunConfig.Create(machine: "gorman-4node", scaleDivisor: 512, policy: "vanilla", seed: 1));
        Zone zt = tiny.Memory.Zones[^1];
        Assert.True(zt.WmarkMin < zt.WmarkMinFullSize); // capped at this scale
        tiny.ZoneStats.SetNodeThreshold(zt.Node, pressure: true, cpu: 0);
        Assert.Equal(10, tiny.ZoneStats.Threshold(zt.Index));
    }

    [Fact]
    public void EveryPageReadFoldsItsCountersAtLeastAsOftenAsTheThresholdSays()
    {
        // Each page the readers of `tiny` (4 CPUs, one 256 MiB zone, threshold 12) read is counted
        // in NR_FILE_PAGES (the page cache insert), NR_FILE_MAPPED (its first map), NUMA_HIT and
        // NUMA_LOCAL (its allocation), each an __inc that folds every 12 + 6 + 1 increments of one
        // CPU: at least 4 x pages / 19 folds, less what each CPU's four differentials still hold.
        RunResult r = Runner.Run(RunConfig.Create(machine: "tiny", scaleDivisor: 1, policy: "rfc-pfn32", seed: 2));
        Assert.True(r.ZoneCounters.Folds >= 4 * r.PagesRead / 19 - 4 * 4 * 19, $"{r.ZoneCounters.Folds} folds for {r.PagesRead} pages");
        Assert.True(r.ZoneCounters.FoldTimeS > 0);
        Assert.True(r.ZoneCounters.PressureShare is > 0 and < 1);
    }
}
