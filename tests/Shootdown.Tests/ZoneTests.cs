using System.Text.Json;
using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>
/// Node 0's ZONE_DMA32 beside its ZONE_NORMAL (x86-64: physical memory below 4 GiB), Linux 4.0's
/// node-ordered zonelists, its fair zone allocation policy and lowmem_reserve.
/// </summary>
public class ZoneTests
{
    [Fact]
    public void MinFreeKbytesSetsTheWatermarksOfTheFullSizeMachine()
    {
        // Default: sqrt(16 x 64 GiB in KiB) = 32768 KiB, 8192 pages of min shared by the zones in
        // proportion to their size, as at full size (2048 per node), low and high a quarter and a
        // half above.
        static (long Min, long Low, long High) Sum(Sim s) =>
            (s.Memory.Zones.Sum(z => z.WmarkMin), s.Memory.Zones.Sum(z => z.WmarkLow), s.Memory.Zones.Sum(z => z.WmarkHigh));
        var byDefault = new Sim(RunConfig.Create(machine: "gorman-4node", scaleDivisor: 16));
        Assert.InRange(Sum(byDefault).Min, 8192 - 5, 8192);
        // khugepaged's recommendation for the machine's six zones: 135168 KiB, 33792 pages.
        var thp = new Sim(RunConfig.Create(machine: "gorman-4node", scaleDivisor: 16, policyParams: new Policies.PolicyParams { MinFreeKbytes = 135168 }));
        var (min, low, high) = Sum(thp);
        Assert.InRange(min, 33792 - 5, 33792);
        Assert.InRange(low, min * 5 / 4 - 5, min * 5 / 4 + 5);
        Assert.InRange(high, min * 3 / 2 - 5, min * 3 / 2 + 5);
        Assert.Contains("\"min_free_kbytes\": 135168", ConfigFile.ToJson(thp.Config), StringComparison.Ordinal);
        Assert.DoesNotContain("min_free_kbytes", ConfigFile.ToJson(byDefault.Config), StringComparison.Ordinal);
    }

    [Fact]
    public void TheSingleSocketMachineHasADma32AndANormalZone()
    {
        var sim = new Sim(RunConfig.Create(machine: "gorman-1node", scaleDivisor: 8));
        Zone[] zones = sim.Memory.Zones;
        Assert.Equal(2, zones.Length);
        Assert.True(zones[0].IsDma32);
        Assert.False(zones[1].IsDma32);
        Assert.Equal((3L << 30) / 8 / 4096, zones[0].Frames);
        Assert.Equal((8L << 30) / 8 / 4096 - zones[0].Frames, zones[1].Frames);
        Assert.Equal(zones[1].FirstFrame, zones[0].FirstFrame + zones[0].Frames);
        // Node order, highest zone first: Normal, then DMA32.
        Assert.Equal([1, 0], sim.Zonelists[0]);
        // lowmem_reserve_ratio 256: DMA32 keeps the Normal zone's pages / 256 (a share of the zone,
        // so it scales with it, where the watermarks are the full-size zone's).
        Assert.Equal(zones[1].Frames / 256, zones[0].LowmemReserve);
        // min_free_kbytes of 8 GiB (11585 kB = 2896 pages) shared in proportion to the zones' sizes.
        Assert.Equal(2896L * 3 / 8, zones[0].WmarkMin);
        Assert.Equal(2896L * 5 / 8, zones[1].WmarkMin);
        // Every frame's zone.
        Assert.Same(zones[0], sim.Memory.ZoneOf(zones[0].FirstFrame + zones[0].Frames - 1));
        Assert.Same(zones[1], sim.Memory.ZoneOf(zones[1].FirstFrame));
    }

    [Fact]
    public void TheFourNodeMachinesZonelistsAreNodeOrdered()
    {
        var sim = new Sim(RunConfig.Create(machine: "gorman-4node", scaleDivisor: 16));
        Memory mem = sim.Memory;
        Assert.Equal(5, mem.Zones.Length);
        Assert.Equal(2, mem.NodeZones[0].Length);
        int n0dma32 = mem.NodeZones[0][0], n0normal = mem.NodeZones[0][1];
        // From node 0: its Normal, its DMA32, then the other nodes; from node 2: nodes 2, 3, 0, 1,
        // node 0's zones highest first (4.0's build_zonelists_in_node_order).
        Assert.Equal([n0normal, n0dma32, mem.NodeZones[1][0], mem.NodeZones[2][0], mem.NodeZones[3][0]], sim.Zonelists[0]);
        Assert.Equal([mem.NodeZones[2][0], mem.NodeZones[3][0], n0normal, n0dma32, mem.NodeZones[1][0]], sim.Zonelists[2]);
    }

    [Fact]
    public void FairZoneAllocationInterleavesTheLocalZonesInProportionToTheirSize()
    {
        // 4.0's fast path (ALLOC_FAIR) takes pages from each local zone until its NR_ALLOC_BATCH
        // (high - low watermark) is used up, then refills every batch: the zones share the
        // allocations as their watermarks do, i.e. as their sizes.
        var sim = new Sim(RunConfig.Create(machine: "gorman-1node", scaleDivisor: 8));
        Exec ex = TestKit.ExecOn(sim, 0);
        var dest = new int[32];
        int dma32 = 0, total = 0;
        for (int i = 0; i < 600; i++)
        {
            Assert.True(TestKit.AllocFast(sim, ex, 32, dest));
            foreach (int f in dest)
            {
                dma32 += sim.Memory.ZoneOf(f).IsDma32 ? 1 : 0;
            }
            total += 32;
        }
        double share = dma32 / (double)total;
        Assert.InRange(share, 0.33, 0.42); // DMA32 is 3/8 of the memory
    }

    [Fact]
    public void Dma32KeepsItsLowmemReserveFromAllocationsThatCouldUseNormal()
    {
        // Without fairness (Normal below its low watermark), the fast path falls back to DMA32 only
        // while DMA32 stays above low + lowmem_reserve[NORMAL].
        var sim = new Sim(RunConfig.Create(machine: "gorman-1node", scaleDivisor: 8));
        Zone dma32 = sim.Memory.Zones[0], normal = sim.Memory.Zones[1];
        while (normal.NrFree > normal.WmarkMin)
        {
            normal.AllocBootPage();
        }
        Exec ex = TestKit.ExecOn(sim, 0);
        var dest = new int[1];
        int got = 0;
        while (TestKit.AllocFast(sim, ex, 1, dest))
        {
            Assert.True(sim.Memory.ZoneOf(dest[0]).IsDma32);
            got++;
            Assert.True(got < dma32.Frames, "the fast path never stopped");
        }
        // It stopped with the reserve intact (pcp refills take up to a batch past the check).
        Assert.InRange(dma32.NrFree, dma32.WmarkLow + dma32.LowmemReserve - dma32.PcpBatch, dma32.WmarkLow + dma32.LowmemReserve + dma32.PcpBatch);
        Assert.True(dma32.LowmemReserve > 0);
    }

    [Fact]
    public void AMachineFileSetsDma32MemoryAndTheRunRecordsIt()
    {
        const string head = "name = \"m\"\nnodes = 2\ncpus_per_node = 2\nmemory = \"8GiB\"\n";
        MachineSpec m = MachineFile.Parse(head + "dma32_memory = \"3GiB\"\n", "m.toml");
        Assert.Equal(3L << 30, m.Dma32Bytes);
        Assert.Equal(0, MachineFile.Parse(head, "m.toml").Dma32Bytes);
        var e = Assert.Throws<ConfigException>(() => MachineFile.Parse(head + "dma32_memory = -1\n", "m.toml"));
        Assert.Contains("m.toml:5: key 'dma32_memory'", e.Message);
        e = Assert.Throws<ConfigException>(() => MachineFile.Parse(head + "dma32_memory = \"lots\"\n", "m.toml"));
        Assert.Contains("dma32_memory", e.Message);

        RunConfig cfg = RunConfig.Create(machine: "gorman-4node", scaleDivisor: 16);
        Assert.Equal((3L << 30) / 16, cfg.Dma32Bytes);
        using JsonDocument doc = JsonDocument.Parse(JsonSerializer.Serialize(cfg, RunResult.JsonOptions));
        Assert.Equal((3L << 30) / 16, doc.RootElement.GetProperty("dma32_bytes").GetInt64());
    }

    [Fact]
    public void Dma32CoveringAllOfNode0LeavesItOneZone()
    {
        // A node 0 with no memory above 4 GiB has one zone (ZONE_DMA32), like the other nodes' one.
        var sim = new Sim(RunConfig.Create(machine: "gorman-4node", memoryBytes: 4L << 30, scaleDivisor: 1));
        Assert.Equal(4, sim.Memory.Zones.Length);
        Assert.True(sim.Memory.Zones[0].IsDma32);
        Assert.Equal(0, sim.Memory.Zones[0].LowmemReserve);
        Assert.Equal([0, 1, 2, 3], sim.Zonelists[0]);
    }
}
