using System.Text.Json;
using System.Text.RegularExpressions;
using Shootdown.Hardware;
using Shootdown.Observe;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>Every output format is parsed back and checked against the run's own counters.</summary>
public partial class OutputTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("shootdown-test-").FullName;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        GC.SuppressFinalize(this);
    }

    private string P(string name) => Path.Combine(_dir, name);

    private static RunConfig Tiny(string policy = "vanilla") => RunConfig.Create(machine: "tiny", scaleDivisor: 4, policy: policy);

    [GeneratedRegex(@"^\s*(.+)-(\d+)\s+\[(\d{3})\]\s+(\d+\.\d{6}): (\w+):\s+(.*)$")]
    private static partial Regex TraceCmdLine();

    [GeneratedRegex(@"^pages:(-?\d+) reason:([a-z ]+) \((\d)\)$")]
    private static partial Regex TlbFlushFields();

    [Theory]
    [InlineData("vanilla")]
    [InlineData("linux-4.3")]
    public void FtraceTextMatchesTraceCmdLayoutAndTheCounters(string policy)
    {
        RunResult r = Runner.Run(Tiny(policy), outputs: new RunOutputs { FtracePath = P("t.txt") });
        string[] lines = File.ReadAllLines(P("t.txt"));
        Assert.StartsWith("cpus=4", lines[0], StringComparison.Ordinal);
        var reasons = new Dictionary<string, long>();
        var events = new Dictionary<string, long>();
        double lastTs = 0;
        foreach (string line in lines.Skip(1))
        {
            Match m = TraceCmdLine().Match(line);
            Assert.True(m.Success, line);
            Assert.InRange(int.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture), 0, 3);
            double ts = double.Parse(m.Groups[4].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(ts >= 0 && ts <= r.ElapsedS + 1);
            lastTs = Math.Max(lastTs, ts);
            string ev = m.Groups[5].Value;
            events[ev] = events.GetValueOrDefault(ev) + 1;
            if (ev == "tlb_flush")
            {
                Match f = TlbFlushFields().Match(m.Groups[6].Value);
                Assert.True(f.Success, m.Groups[6].Value);
                reasons[f.Groups[2].Value] = reasons.GetValueOrDefault(f.Groups[2].Value) + 1;
            }
        }
        Assert.Equal(r.Vmstat["nr_tlb_remote_flush"], reasons.GetValueOrDefault("remote ipi send"));
        if (policy == "vanilla")
        {
            // flush_tlb_func traces each request it acts on, and counts it as received.
            Assert.Equal(r.Vmstat["nr_tlb_remote_flush_received"], reasons.GetValueOrDefault("remote shootdown"));
        }
        else
        {
            // 4.3's try_to_unmap_flush traces once on the sender; percpu_flush_tlb_batch_pages counts
            // a receipt on every CPU of the mask (the sender's included) but traces nothing.
            Assert.InRange(reasons.GetValueOrDefault("remote shootdown"), 1, r.Vmstat["nr_tlb_remote_flush_received"] - 1);
        }
        Assert.Equal(r.Vmstat["nr_tlb_local_flush_one"], reasons.GetValueOrDefault("local shootdown"));
        Assert.Equal(r.Vmstat["nr_tlb_local_flush_all"], reasons.GetValueOrDefault("local mm shootdown"));
        Assert.Equal(r.Vmstat["pgfault"], events.GetValueOrDefault("page_fault_user"));
        Assert.Equal(r.Vmstat["allocstall"], events.GetValueOrDefault("mm_vmscan_direct_reclaim_begin"));
        Assert.True(events.GetValueOrDefault("mm_vmscan_kswapd_wake") > 0);
        Assert.True(events.GetValueOrDefault("mm_vmscan_lru_shrink_inactive") > 0);
    }

    [Fact]
    public void TraceFiltersKeepOnlyTheChosenEventsAndWindow()
    {
        var filter = new TraceFilter { Patterns = TraceFilter.ParsePatterns("vmscan:*"), FromNs = 200_000_000, ToNs = 230_000_000 };
        Runner.Run(Tiny(), outputs: new RunOutputs { FtracePath = P("f.txt"), Filter = filter });
        string[] lines = File.ReadAllLines(P("f.txt")).Skip(1).ToArray();
        Assert.NotEmpty(lines);
        foreach (string line in lines)
        {
            Match m = TraceCmdLine().Match(line);
            Assert.StartsWith("mm_vmscan_", m.Groups[5].Value, StringComparison.Ordinal);
            double ts = double.Parse(m.Groups[4].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(ts, 0.2, 0.23);
        }
    }

    [Theory]
    [InlineData("nope:*")]
    [InlineData(",")]
    public void BadTracePatternsAreRejected(string patterns)
    {
        Assert.Throws<ConfigException>(() => TraceFilter.ParsePatterns(patterns));
    }

    [Theory]
    [InlineData("2")]
    [InlineData("3-1")]
    [InlineData("a-b")]
    public void BadTraceWindowsAreRejected(string window)
    {
        Assert.Throws<ConfigException>(() => TraceFilter.ParseWindow(window));
    }

    [Fact]
    public void PerfettoJsonIsWellFormedWithPairedFlowsAndMonotonicTracks()
    {
        var filter = new TraceFilter { FromNs = 50_000_000, ToNs = 250_000_000 };
        RunResult r = Runner.Run(Tiny(), outputs: new RunOutputs { PerfettoPath = P("p.json"), Filter = filter });
        using var doc = JsonDocument.Parse(File.ReadAllBytes(P("p.json")));
        var evs = doc.RootElement.GetProperty("traceEvents").EnumerateArray().ToList();
        var starts = new HashSet<long>();
        var ends = new HashSet<long>();
        var lastTs = new Dictionary<string, double>();
        int slices = 0, counters = 0, instants = 0;
        foreach (var e in evs)
        {
            string ph = e.GetProperty("ph").GetString()!;
            if (ph == "M")
            {
                continue;
            }
            double ts = e.GetProperty("ts").GetDouble();
            string track = ph == "C" ? "C:" + e.GetProperty("name").GetString() : e.GetProperty("tid").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(!lastTs.TryGetValue(track, out double prev) || ts >= prev, $"track {track} goes back in time at {ts}");
            lastTs[track] = ts;
            switch (ph)
            {
                case "X":
                    slices++;
                    Assert.True(e.GetProperty("dur").GetDouble() >= 0);
                    break;
                case "s":
                    starts.Add(e.GetProperty("id").GetInt64());
                    break;
                case "f":
                    ends.Add(e.GetProperty("id").GetInt64());
                    break;
                case "C":
                    counters++;
                    break;
                case "i":
                    instants++; // a tracepoint (tlb_flush with its reason) on a CPU's track
                    Assert.Equal("t", e.GetProperty("s").GetString());
                    Assert.Contains("reason:", e.GetProperty("args").GetProperty("fields").GetString(), StringComparison.Ordinal);
                    break;
                default:
                    Assert.Fail($"unexpected phase {ph}");
                    break;
            }
        }
        Assert.True(slices > 100);
        Assert.True(counters > 0);
        Assert.True(instants > 0);
        Assert.NotEmpty(starts);
        Assert.Equal(starts, ends); // every flow has both ends
        Assert.True(r.TlbIpis > starts.Count); // the window holds part of the run
    }

    [Fact]
    public void TimeSeriesCsvSumsToTheCounters()
    {
        RunResult r = Runner.Run(Tiny(), outputs: new RunOutputs { TimeSeriesPath = P("ts.csv") });
        SeriesTable t = SeriesTable.Parse("run", File.ReadAllText(P("ts.csv")));
        foreach (string c in ProcFiles.TimeSeriesColumns.Append("free_pages_node0").Append("wmark_low"))
        {
            Assert.True(t.Columns.ContainsKey(c), c);
        }
        Assert.Equal(r.TlbIpis, (long)t["tlb_ipis"].Sum());
        Assert.Equal(r.Vmstat["pgsteal_direct"], (long)t["pgsteal_direct"].Sum());
        Assert.Equal(r.Vmstat["pgfault"], (long)t["pgfault"].Sum());
        Assert.Equal(0.1, t.IntervalS, 9);
        Assert.All(t["free_pages_node0"], v => Assert.True(v >= 0));
    }

    [Fact]
    public void VmstatAndInterruptsFilesHaveTheProcLayouts()
    {
        var sim = new Sim(Tiny());
        sim.Run();
        string[] vm = ProcFiles.Vmstat(sim.VmStat).TrimEnd('\n').Split('\n');
        Assert.All(vm, l => Assert.Matches(@"^[a-z_]+ \d+$", l));
        Assert.Contains($"nr_tlb_remote_flush {sim.VmStat[VmEvent.nr_tlb_remote_flush]}", vm);
        string[] irq = ProcFiles.Interrupts(sim.Cpus).TrimEnd('\n').Split('\n');
        Assert.Equal("           CPU0       CPU1       CPU2       CPU3       ", irq[0]);
        Assert.Matches(@"^LOC: (\s*\d+ ){4}  Local timer interrupts$", irq[1]);
        Assert.Matches(@"^RES: (\s*\d+ ){4}  Rescheduling interrupts$", irq[2]);
        Assert.Matches(@"^CAL: (\s*\d+ ){4}  Function call interrupts$", irq[3]);
        Assert.Matches(@"^TLB: (\s*\d+ ){4}  TLB shootdowns$", irq[4]);
        long[] res = irq[2][5..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(4).Select(long.Parse).ToArray();
        Assert.Equal(sim.Cpus.Select(c => c.ReschedIrqs), res);
        long[] tlb = irq[4][5..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(4).Select(long.Parse).ToArray();
        Assert.Equal(sim.Cpus.Select(c => c.TlbShootdowns), tlb);
    }

    [Fact]
    public void PlotsAreWrittenAsPngAndSvgOfTheExpectedSize()
    {
        Runner.Run(Tiny(), outputs: new RunOutputs { TimeSeriesPath = P("a.csv") });
        Runner.Run(Tiny("linux-4.3"), outputs: new RunOutputs { TimeSeriesPath = P("b.csv") });
        var files = Plots.WriteAll(
            [SeriesTable.Parse("vanilla", File.ReadAllText(P("a.csv"))), SeriesTable.Parse("linux-4.3", File.ReadAllText(P("b.csv")))],
            P("plots"));
        // interrupts, reclaim, free memory and the faults (both series have pgfault), PNG and SVG each.
        Assert.Equal(8, files.Count);
        Assert.Contains(files, f => f.EndsWith("faults.png", StringComparison.Ordinal));
        // A series without the pgfault column (an older CSV) gets the other three plots.
        string[] rows = File.ReadAllLines(P("a.csv"));
        int col = Array.IndexOf(rows[0].Split(','), "pgfault");
        string withoutFaults = string.Join('\n', rows.Select(r => string.Join(',', r.Split(',').Where((_, i) => i != col)))) + "\n";
        Assert.Equal(6, Plots.WriteAll([SeriesTable.Parse("old", withoutFaults)], P("plots-old")).Count);
        foreach (string png in files.Where(f => f.EndsWith(".png", StringComparison.Ordinal)))
        {
            byte[] b = File.ReadAllBytes(png);
            Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, b[..4]);
            int w = (b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19];
            int h = (b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23];
            Assert.Equal((Plots.Width, Plots.Height), (w, h));
        }
        foreach (string svg in files.Where(f => f.EndsWith(".svg", StringComparison.Ordinal)))
        {
            var x = System.Xml.Linq.XDocument.Load(svg);
            Assert.Equal("svg", x.Root!.Name.LocalName);
            Assert.Equal(Plots.Width.ToString(System.Globalization.CultureInfo.InvariantCulture), x.Root.Attribute("width")!.Value);
        }
    }

    [Fact]
    public void TracingDoesNotChangeTheResult()
    {
        RunResult plain = Runner.Run(Tiny());
        RunResult traced = Runner.Run(Tiny(), outputs: new RunOutputs { FtracePath = P("x.txt"), PerfettoPath = P("x.json"), TimeSeriesPath = P("x.csv") });
        Assert.Equal(RunTests.Normalize(plain), RunTests.Normalize(traced));
    }
}
