using System.Text.Json;
using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>
/// Finite caches: a socket's last-level cache holds <see cref="CostModel.LlcBytes"/>; a struct
/// page or PTE line its owner has not written again since its socket filled more lines than that
/// is evicted and comes from DRAM.
/// </summary>
public class CacheTests
{
    /// <summary>Two sockets with one CPU each and a cache of <paramref name="llcLines"/> lines.</summary>
    private static CacheLines TwoSockets(long llcLines, out CostModel c)
    {
        c = CostModel.Xeon2015 with { LlcBytes = llcLines * 64 };
        return new CacheLines(2, 1, NumaDistance.Uniform(2), c);
    }

    /// <summary>A struct page line <paramref name="cpu"/> has just written (from DRAM of node 0).</summary>
    private static Page WrittenBy(CacheLines lines, int cpu)
    {
        var p = new Page { Owner = -1 };
        lines.Take(ref p, cpu, 0);
        return p;
    }

    /// <summary>Fills <paramref name="node"/>'s cache with the lines of <paramref name="pages"/> cleared pages.</summary>
    private static void Clear(CacheLines lines, CostModel c, int node, int pages)
    {
        for (int i = 0; i < pages; i++)
        {
            lines.ClearPage(c, node, node);
        }
    }

    [Fact]
    public void ALineStaysInItsOwnersCacheUntilTheSocketHasFilledTheCache()
    {
        CacheLines lines = TwoSockets(64 * 1024, out CostModel c); // 1,024 pages' worth
        var p = new Page { Owner = -1 };
        Assert.Equal(c.DramLocalNs, lines.Take(ref p, 0, 0)); // never touched: DRAM
        Assert.Equal(0, lines.Take(ref p, 0, 0)); // in this CPU's cache now
        Clear(lines, c, 0, 1000);
        Assert.Equal(0, lines.Read(ref p, 0, 0)); // 1,000 pages later it is still there
        Assert.Equal(c.CacheLineRemoteNodeNs, lines.Read(ref p, 1, 0)); // and another socket gets it from there
        Clear(lines, c, 0, 100);
        // 1,100 pages of fills since CPU 0 wrote it: evicted. The other socket reads remote
        // DRAM, its own CPU local DRAM.
        Assert.Equal(c.DramRemoteNodeNs, lines.Read(ref p, 1, 0));
        Assert.Equal(c.DramLocalNs, lines.Take(ref p, 0, 0));
        // Writing it again brought it back and restarted its life in the cache.
        Assert.Equal(0, lines.Read(ref p, 0, 0));
        Clear(lines, c, 0, 1000);
        Assert.Equal(0, lines.Read(ref p, 0, 0));
    }

    [Fact]
    public void AnotherSocketsFillsDoNotEvictALine()
    {
        CacheLines lines = TwoSockets(64 * 1024, out CostModel c);
        Page p = WrittenBy(lines, 0);
        Clear(lines, c, 1, 10_000);
        Assert.Equal(0, lines.Read(ref p, 0, 0));
        // A line that moves to the other socket lives by that socket's clock.
        Assert.Equal(c.CacheLineRemoteNodeNs, lines.Take(ref p, 1, 0));
        Clear(lines, c, 1, 2000);
        Assert.Equal(c.DramLocalNs, lines.Read(ref p, 0, 0)); // evicted: from node 0's DRAM, where the struct page is
        Assert.Equal(c.DramRemoteNodeNs, lines.Read(ref p, 1, 0));
    }

    [Fact]
    public void EveryLineFetchedFillsTheCacheToo()
    {
        CacheLines lines = TwoSockets(16 * 16, out CostModel c); // 256 lines
        Page old = WrittenBy(lines, 0);
        var others = new Page[300];
        for (int i = 0; i < others.Length; i++)
        {
            others[i].Owner = -1;
            lines.Take(ref others[i], 0, 0); // 300 lines from DRAM, no page cleared
        }
        Assert.Equal(c.DramLocalNs, lines.Read(ref old, 0, 0));
        Assert.Equal(0, lines.Read(ref others[299], 0, 0));
    }

    [Fact]
    public void UnlimitedCachesEvictNothing()
    {
        CacheLines lines = TwoSockets(0, out CostModel c);
        Page p = WrittenBy(lines, 0);
        Clear(lines, c, 0, 1_000_000);
        Assert.Equal(0, lines.Read(ref p, 0, 0));
        Assert.Equal(c.CacheLineRemoteNodeNs, lines.Read(ref p, 1, 0));
    }

    [Fact]
    public void APteLineComesFromItsWritersCacheOrFromDramOfItsPageTablesNode()
    {
        CacheLines lines = TwoSockets(64 * 1024, out CostModel c);
        uint stamp = lines.StampNow(0); // CPU 0 faults the page in and writes the PTE
        Assert.Equal(c.CacheLineRemoteNodeNs, lines.PteLine(0, stamp, 0, 1));
        Assert.Equal(0, lines.PteLine(0, stamp, 0, 0));
        Clear(lines, c, 0, 2000);
        Assert.Equal(c.DramRemoteNodeNs, lines.PteLine(0, stamp, 0, 1)); // the page table is on node 0
        Assert.Equal(c.DramLocalNs, lines.PteLine(0, stamp, 0, 0));
        // Never written: from DRAM of the page table's node.
        Assert.Equal(c.DramRemoteNodeNs, lines.PteLine(-1, 0, 1, 0));
    }

    [Fact]
    public void ReadingAPteFillsAnEighthOfALine()
    {
        // One line holds eight PTEs of pages reclaim walks in order: eight PTE reads from DRAM
        // fill one line.
        CacheLines lines = TwoSockets(16 * 16, out _); // 256 lines
        Page p = WrittenBy(lines, 0);
        for (int i = 0; i < 8 * 250; i++)
        {
            lines.PteLine(-1, 0, 0, 0);
        }
        Assert.Equal(0, lines.Read(ref p, 0, 0)); // 250 lines filled: still there
        for (int i = 0; i < 8 * 20; i++)
        {
            lines.PteLine(-1, 0, 0, 0);
        }
        Assert.NotEqual(0, lines.Read(ref p, 0, 0));
    }

    [Fact]
    public void AnEvictedLineReadBackOnItsOwnersSocketIsCachedAgain()
    {
        CacheLines lines = TwoSockets(64 * 1024, out CostModel c);
        Page p = WrittenBy(lines, 0);
        Clear(lines, c, 0, 2000);
        Assert.Equal(c.DramLocalNs, lines.Read(ref p, 0, 0));
        Assert.Equal(0, lines.Read(ref p, 0, 0));
        Assert.Equal(c.CacheLineRemoteNodeNs, lines.Read(ref p, 1, 0));
        // Another socket's read of an evicted line does not make it the owner's again.
        Clear(lines, c, 0, 2000);
        Assert.Equal(c.DramRemoteNodeNs, lines.Read(ref p, 1, 0));
        Assert.Equal(c.DramLocalNs, lines.Read(ref p, 0, 0));
    }

    [Fact]
    public void SameSocketTransfersDoNotFillTheInclusiveCache()
    {
        CostModel c = CostModel.Xeon2015 with { LlcBytes = 16 * 16 * 64 }; // 256 lines
        var lines = new CacheLines(1, 2, NumaDistance.Uniform(1), c); // CPUs 0 and 1 on one socket
        Page old = WrittenBy(lines, 0);
        var ping = new Page { Owner = -1 };
        for (int i = 0; i < 1000; i++)
        {
            lines.Take(ref ping, i % 2, 0); // one line bouncing between two cores of the socket
        }
        Assert.Equal(0, lines.Read(ref old, 0, 0));
        Assert.Equal(256, lines.CapacityLines);
    }

    [Fact]
    public void ACacheSmallerThanOneStampUnitStillHoldsTheLineJustWritten()
    {
        CacheLines lines = TwoSockets(1, out _); // 64 bytes
        Page p = WrittenBy(lines, 0);
        Assert.Equal(0, lines.Read(ref p, 0, 0));
    }

    [Fact]
    public void CopyingAPageFillsTheCacheWithBothPages()
    {
        CacheLines lines = TwoSockets(16 * 64, out CostModel c); // 1,024 lines: 8 copies
        Page p = WrittenBy(lines, 0);
        for (int i = 0; i < 7; i++)
        {
            Assert.Equal(c.CopyPageNs, lines.CopyPage(c, 0));
        }
        Assert.Equal(0, lines.Read(ref p, 0, 0));
        lines.CopyPage(c, 0); // the eighth copy: 1,024 lines since the write
        Assert.Equal(c.DramLocalNs, lines.Read(ref p, 0, 0));
    }

    [Fact]
    public void MachineFilesDescribeTheirCachesAndRunsRecordThem()
    {
        Assert.Equal(18L << 20, MachineSpec.Resolve("gorman-4node").Costs.LlcBytes);
        Assert.Equal(20L << 20, MachineSpec.Resolve("gorman-1node").Costs.LlcBytes);
        Assert.Equal(37_486_592, MachineSpec.Resolve("cascadelake-2s").Costs.LlcBytes);
        // What a miss costs is each machine's own too: one socket's DRAM attached to its processor
        // (60 ns), the 4-socket E7's behind its memory buffers (135 ns).
        Assert.Equal(60, MachineSpec.Resolve("gorman-1node").Costs.DramLocalNs);
        Assert.Equal(135, MachineSpec.Resolve("gorman-4node").Costs.DramLocalNs);
        string file = TestKit.TempFile("m.toml", "name = \"m\"\nnodes = 1\ncpus_per_node = 2\nmemory = \"64MiB\"\n[hardware]\nllc_bytes = 8388608\n");
        Assert.Equal(8L << 20, MachineSpec.Resolve(file).Costs.LlcBytes);
        string bad = TestKit.TempFile("b.toml", "name = \"b\"\nnodes = 1\ncpus_per_node = 2\nmemory = \"64MiB\"\n[hardware]\nllc_bytes = -1\n");
        var e = Assert.Throws<ConfigException>(() => MachineSpec.Resolve(bad));
        Assert.Contains("llc_bytes", e.Message);
        RunResult r = Runner.Run(RunConfig.Create(machine: "tiny", scaleDivisor: 4));
        using var doc = JsonDocument.Parse(r.ToJson());
        Assert.Equal(30L << 20, doc.RootElement.GetProperty("config").GetProperty("costs").GetProperty("llc_bytes").GetInt64());
    }

    [Fact]
    public void EveryPteWriteRecordsItsWriterAndItsSocketsClock()
    {
        var sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: 16)); // CPUs 0-3 node 0, 4-7 node 1
        Memory mem = sim.Memory;
        var (mm, vma, f) = KernelTests.MapOnePage(sim, 2, 0); // present, not young, never written by a CPU
        long vpn = vma.VpnOf(2);
        Assert.Equal(-1, mem.PteWriter[f]);
        // The walker on CPU 5 sets the accessed bit: a locked write of the PTE's line.
        Assert.Equal(Mmu.Access.Filled, sim.Mmu.Touch(TestKit.ExecOn(sim, 5), mm, vpn, write: false));
        Assert.Equal(5, mem.PteWriter[f]);
        Assert.Equal(sim.Lines.StampNow(5), mem.PteStamp[f]);
        // Node 1 fills its cache; page_referenced on CPU 1 reads the line from DRAM, clears the bit and owns it.
        for (int i = 0; i < 100_000; i++)
        {
            sim.Lines.ClearPage(sim.MachineCosts, 1, 1);
        }
        for (int i = 0; i < 1000; i++)
        {
            sim.Lines.ClearPage(sim.MachineCosts, 0, 0);
        }
        uint stampOf5 = mem.PteStamp[f];
        Exec reclaimer = TestKit.ExecOn(sim, 1);
        Assert.Equal(1, sim.Rmap.PageReferenced(reclaimer, f, out _));
        Assert.Equal(1, mem.PteWriter[f]);
        Assert.Equal(sim.Lines.StampNow(1), mem.PteStamp[f]);
        Assert.NotEqual(stampOf5, mem.PteStamp[f]);
        // Another look with the bit clear reads the line and writes nothing.
        Assert.Equal(0, sim.Rmap.PageReferenced(TestKit.ExecOn(sim, 6), f, out _));
        Assert.Equal(1, mem.PteWriter[f]);
        // do_wp_page on CPU 2 makes the PTE writable and dirty; page_mkclean on CPU 7 cleans it.
        mm.PageTable.Update(vpn, mm.PageTable.Get(vpn) & ~(Pte.Write | Pte.Dirty));
        Assert.True(sim.Filemap.WpPage(TestKit.ExecOn(sim, 2), vma, vpn));
        Assert.Equal(2, mem.PteWriter[f]);
        Assert.Equal(1, sim.Rmap.PageMkclean(TestKit.ExecOn(sim, 7), f));
        Assert.Equal(7, mem.PteWriter[f]);
    }

    [Fact]
    public void EvictedStructPagesAndPteLinesCostReclaimDramReads()
    {
        // The same run with unlimited caches, the machine's 30 MiB per socket (against 128 MiB of
        // memory per node at 1/16) and a 64 KiB cache that holds almost nothing: reclaim, which
        // touches struct pages and PTEs written an LRU cycle ago, spends more system time the
        // smaller the cache; the user loop does not change.
        RunConfig cfg = RunConfig.Create(machine: "small-2node", scaleDivisor: 16);
        RunResult unlimited = Runner.Run(cfg with { Costs = cfg.Costs with { LlcBytes = 0 } });
        RunResult preset = Runner.Run(cfg);
        RunResult tiny = Runner.Run(cfg with { Costs = cfg.Costs with { LlcBytes = 64 * 1024 } });
        static double Reclaim(RunResult r) => r.SystemByPath["direct reclaim"].SystemS + r.SystemByPath["kswapd reclaim"].SystemS;
        static double PerPage(RunResult r) => Reclaim(r) / r.PagesReclaimed;
        Assert.True(PerPage(preset) > PerPage(unlimited) * 1.02, $"{PerPage(preset)} vs {PerPage(unlimited)}");
        Assert.True(PerPage(tiny) > PerPage(preset), $"{PerPage(tiny)} vs {PerPage(preset)}");
        Assert.Equal(unlimited.UserS, preset.UserS, 2);
    }
}
