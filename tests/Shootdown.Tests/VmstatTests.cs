using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
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
        // 24 CPUs, 16 GiB zones: normal 2 x fls(24) x 9 = 90; min 2048, low 2560: pressure 512 / 24 = 21.
        ZoneStats zs = TwoNodes(12, (int)(16 * GiB / 4096), 2048, 2560, out CacheLines lines, out _);
        Assert.Equal(90, zs.Threshold(0));
        long cost = zs.SetNodeThreshold(0, pressure: true, cpu: 0);
        Assert.Equal(21, zs.Threshold(0));
        Assert.Equal(90, zs.Threshold(1)); // the other node's kswapd sleeps on
        // It wrote every CPU's pageset of the zone: 11 lines from its own socket, 12 from the other.
        Assert.Equal(11 * lines.Transfer(1, 0) + 12 * lines.Transfer(12, 0), cost);
        Assert.Equal(0, zs.SetNodeThreshold(0, pressure: true, cpu: 0)); // no change, nothing written
        zs.SetNodeThreshold(0, pressure: false, cpu: 0);
        Assert.Equal(90, zs.Threshold(0));
    }

    [Fact]
    public void AZoneWithoutDriftMarkKeepsItsNormalThresholdUnderPressure()
    {
        // 4 CPUs, a 256 MiB zone: normal 2 x 3 x (1 + 2) = 18; 4 x 18 = 72 is under the low-min
        // gap of 128, so refresh_zone_stat_thresholds sets no percpu_drift_mark and
        // set_pgdat_percpu_threshold leaves the zone alone.
        ZoneStats zs = TwoNodes(2, 65536, 512, 640, out _, out _);
        Assert.Equal(18, zs.Threshold(0));
        Assert.Equal(0, zs.SetNodeThreshold(0, pressure: true, cpu: 0));
        Assert.Equal(18, zs.Threshold(0));
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

    [Fact]
    public void IncOverstepsByHalfTheThreshold()
    {
        ZoneStats zs = TwoNodes(12, (int)(16 * GiB / 4096), 2048, 2560, out _, out _);
        zs.SetNodeThreshold(0, pressure: true, cpu: 0);
        int t = zs.Threshold(0); // 21
        int folds = 0;
        int[] at = new int[2];
        for (int i = 1; i <= 2 * t + t / 2 + 2; i++)
        {
            if (zs.Inc(3, 0, ZoneStatItem.NumaHit) > 0)
            {
                at[folds++] = i;
            }
        }
        // The first fold at t + 1 increments; the differential restarts at -t/2, so the next comes
        // t + t/2 + 1 increments later.
        Assert.Equal(2, folds);
        Assert.Equal(t + 1, at[0]);
        Assert.Equal(at[0] + t + t / 2 + 1, at[1]);
        // __dec_zone_state mirrors it.
        int dec = 0;
        for (int i = 0; i < t + 1; i++)
        {
            dec += zs.Dec(4, 0, ZoneStatItem.NrFilePages) > 0 ? 1 : 0;
        }
        Assert.Equal(1, dec);
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
    public void TheFourNodeMachineFoldsTenTimesAsOftenPerPageAsTheOneNodeMachine()
    {
        // The presets' own zones: on four sockets kswapd's pressure threshold is 10 (48 CPUs, a
        // 512-page gap between min and low); on one socket the drift of 8 CPUs cannot reach the gap
        // and the normal threshold stays.
        var four = new Sim(RunConfig.Create(machine: "gorman-4node", scaleDivisor: 64, policy: "vanilla", seed: 1));
        Zone z4 = four.Memory.Zones[^1];
        Assert.Equal(108, four.ZoneStats.Threshold(z4.Index));
        four.ZoneStats.SetNodeThreshold(z4.Node, pressure: true, cpu: 0);
        Assert.Equal(10, four.ZoneStats.Threshold(z4.Index));
        var one = new Sim(RunConfig.Create(machine: "gorman-1node", scaleDivisor: 32, policy: "vanilla", seed: 1));
        Zone z1 = one.Memory.Zones[^1];
        int normal = one.ZoneStats.Threshold(z1.Index);
        one.ZoneStats.SetNodeThreshold(z1.Node, pressure: true, cpu: 0);
        Assert.Equal(normal, one.ZoneStats.Threshold(z1.Index));
        Assert.InRange(normal, 40, 70);
    }

    [Fact]
    public void ARunReportsItsFolds()
    {
        RunResult r = Runner.Run(RunConfig.Create(machine: "tiny", scaleDivisor: 1, policy: "rfc-pfn32", seed: 2));
        Assert.True(r.ZoneCounters.Folds > 0);
        Assert.True(r.ZoneCounters.FoldTimeS > 0);
        Assert.True(r.ZoneCounters.FoldTimeS < r.SystemS);
    }
}
