using Shootdown.Hardware;
using System.Text.Json.Nodes;
using Shootdown.Reports;

namespace Shootdown.Tests;

public class CrossCheckTests
{
    private static readonly CrossCheckRun SmallTruncate = new("truncate", "gorman-1node", "sparse-truncate", "vanilla", 64);

    private static CrossCheckSpec Truncate(double published, double min, double max) =>
        new("truncate per page", "ns", published, min, max, $"{min}..{max}", "test", ["truncate"], r => CrossCheck.TruncateNsPerPage(r("truncate")));

    [Fact]
    public void ACheckReadsItsRunAndJudgesItsOwnRange()
    {
        // One run read by two checks: one whose range holds the simulated figure, one whose range
        // lies above it. The figure is the rm's system time per page freed, as the run reports it.
        CrossCheck c = CrossCheck.Run([Truncate(300, 1, 100_000), Truncate(300, 100_000, 200_000)], [SmallTruncate], seed: 1, jobs: 1);
        Assert.Single(c.Configs);
        RunResult r = Runner.Run(SmallTruncate.Config(1));
        double perPage = r.Truncate!.SystemS / r.Truncate.Pages * 1e9;
        Assert.True(r.Truncate.Pages > 0);
        Assert.Equal(perPage, c.Rows[0].Simulated, 6);
        Assert.Equal(perPage / 300, c.Rows[0].Ratio, 6);
        Assert.True(c.Rows[0].Within);
        Assert.False(c.Rows[1].Within);
        Assert.False(c.AllWithin);
    }

    [Fact]
    public void TheReportDoesNotDependOnParallelism()
    {
        CrossCheckRun[] runs = [SmallTruncate, SmallTruncate with { Key = "other", Policy = "rfc-pfn32" }];
        CrossCheckSpec[] checks =
        [
            Truncate(300, 1, 100_000),
            new("ratio", "x", 1, 0.5, 2, "", "test", ["truncate", "other"], r => CrossCheck.TruncateNsPerPage(r("other")) / CrossCheck.TruncateNsPerPage(r("truncate"))),
        ];
        string one = CrossCheck.Run(checks, runs, 3, jobs: 1).ToJsonNode().ToJsonString();
        string two = CrossCheck.Run(checks, runs, 3, jobs: 2).ToJsonNode().ToJsonString();
        Assert.Equal(one, two);
        Assert.Contains("\"seed\":3", one, StringComparison.Ordinal);
    }

    [Fact]
    public void RepeatEvaluatesEachSeedAndJudgesTheMean()
    {
        // Two runs, so a mix-up of runs and seeds in the results would show.
        var tiny = new CrossCheckRun("tiny", "tiny", "lru-file-mmap-read", "vanilla", 4);
        var other = new CrossCheckRun("other", "tiny", "lru-file-mmap-read", "linux-4.3", 4);
        static CrossCheckSpec Elapsed(string key, double min, double max) =>
            new(key, "s", (min + max) / 2, min, max, "", "test", [key], r => r(key).ElapsedS);
        CrossCheck two = CrossCheck.Run([Elapsed("tiny", 0, 1e9), Elapsed("other", 0, 1e9)], [tiny, other], seed: 4, jobs: 2, repeat: 2);
        double t4 = Runner.Run(tiny.Config(4)).ElapsedS, t5 = Runner.Run(tiny.Config(5)).ElapsedS;
        double o4 = Runner.Run(other.Config(4)).ElapsedS, o5 = Runner.Run(other.Config(5)).ElapsedS;
        Assert.NotEqual(t4, t5); // the seeds give different runs, so the mean is neither
        Assert.NotEqual(t4, o4); // and the runs differ from each other
        Assert.Equal(2, two.Seeds);
        Assert.Equal([t4, t5], two.Rows[0].PerSeed);
        Assert.Equal([o4, o5], two.Rows[1].PerSeed);
        Assert.Equal((t4 + t5) / 2, two.Rows[0].Simulated, 12);
        // A range that holds the mean and neither seed's value: the mean decides.
        double mean = (t4 + t5) / 2, d = Math.Abs(t5 - t4);
        CrossCheck mid = CrossCheck.Run([Elapsed("tiny", mean - d / 4, mean + d / 4)], [tiny], seed: 4, jobs: 1, repeat: 2);
        Assert.True(mid.Rows[0].Within);
        Assert.Single(mid.Configs);
        string json = two.ToJsonNode().ToJsonString();
        Assert.Contains("\"per_seed\":[", json, StringComparison.Ordinal);
        Assert.Contains("\"seeds\":2", json, StringComparison.Ordinal);
        Assert.Contains("seeds 4..5", two.ToText(), StringComparison.Ordinal);
        Assert.EndsWith(string.Create(System.Globalization.CultureInfo.InvariantCulture, $",{t4:R} {t5:R}"), two.ToCsv().Split('\n')[1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => CrossCheck.Run([Elapsed("tiny", 0, 1)], [tiny], 1, repeat: 0));
    }

    [Fact]
    public void MemcgReachesEveryRunAndItsRecordedConfiguration()
    {
        // A run with its own SWAP_CLUSTER_MAX keeps it when --memcg turns memory cgroups off.
        var tiny = new CrossCheckRun("tiny", "tiny", "lru-file-mmap-read", "vanilla", 4, SwapClusterMax: 64);
        static CrossCheckSpec Elapsed(string key) => new(key, "s", 1, 0, 1e9, "", "test", [key], r => r(key).ElapsedS);
        Assert.True(tiny.Config(1).Policy.Memcg); // the kernel's default
        CrossCheck off = CrossCheck.Run([Elapsed("tiny")], [tiny], seed: 1, jobs: 1, memcg: false);
        Assert.False(off.Configs[0].Policy.Memcg);
        Assert.Equal(64, off.Configs[0].Policy.SwapClusterMax);
        Assert.Equal(Runner.Run(tiny.Config(1, memcg: false)).ElapsedS, off.Rows[0].Simulated);
        Assert.Contains("\"memcg\":false", off.ToJsonNode().ToJsonString(), StringComparison.Ordinal);
        CrossCheck on = CrossCheck.Run([Elapsed("tiny")], [tiny], seed: 1, jobs: 1, memcg: true);
        Assert.True(on.Configs[0].Policy.Memcg);
        Assert.Equal(64, on.Configs[0].Policy.SwapClusterMax);
    }

    [Fact]
    public void EachRunsJsonCarriesItsFullConfigurationForReplay()
    {
        CrossCheck c = CrossCheck.Run([Truncate(300, 1, 100_000)], [SmallTruncate], seed: 7, jobs: 1,
            costs: k => k with { PageFreeNs = 81 });
        JsonObject run = (JsonObject)c.ToJsonNode()["runs"]![0]!;
        RunConfig replay = ConfigFile.FromObject((JsonObject)run["config"]!, "runs[0]", _ => null);
        Assert.Equal(7UL, replay.Seed);
        Assert.Equal(81, replay.Costs.PageFreeNs); // the --cost override is recorded
        Assert.Equal(ConfigFile.ToJson(c.Configs[0]), ConfigFile.ToJson(replay));
    }

    [Fact]
    public void NoChecksMeansNoRunsAndSaysSo()
    {
        CrossCheck none = CrossCheck.Run([], [SmallTruncate], seed: 1, jobs: 1);
        Assert.Empty(none.Configs);
        Assert.Equal("Cross-checks: none to run.\n", none.ToText());
        Assert.True(none.AllWithin);
    }

    [Fact]
    public void ACheckOfARunThatIsNotDefinedIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => CrossCheck.Run(
            [new("x", "ns", 1, 0, 2, "", "", ["nope"], r => r("nope").ElapsedS)], [SmallTruncate], 1));
        Assert.Contains("'nope'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LockShareIsSpinAndAcquisitionOverCpuTime()
    {
        RunResult r = Runner.Run(RunConfig.Create(machine: "tiny", scaleDivisor: 1));
        double cpu = r.UserS + r.SystemS;
        Assert.NotEmpty(r.Locks);
        Assert.Contains(r.Locks.Values, l => l.SpinS > 0);
        foreach (var (name, l) in r.Locks)
        {
            Assert.Equal((l.SpinS + l.AcquireS) / cpu * 100, CrossCheck.LockShare(r, name), 9);
            // Every acquisition pays at least the locked instruction (tiny runs at the reference clock).
            Assert.True(l.AcquireS * 1e9 >= l.Acquisitions * (double)CostModel.Xeon2015.LockAcquireNs - 1, $"{name}: {l.AcquireS} s for {l.Acquisitions} acquisitions");
        }
        Assert.Equal(0, CrossCheck.LockShare(r, "no such lock"));
    }

    [Fact]
    public void EveryBuiltInCheckReadsABuiltInRunAndHasAPublishedFigureInItsRange()
    {
        var keys = CrossCheck.Runs.Select(r => r.Key).ToHashSet();
        Assert.Equal(CrossCheck.Runs.Count, keys.Count);
        foreach (CrossCheckSpec c in CrossCheck.All)
        {
            Assert.All(c.Runs, k => Assert.Contains(k, keys));
            Assert.InRange(c.Published, c.Min, c.Max);
            Assert.False(string.IsNullOrWhiteSpace(c.Source));
        }
        // Each run's configuration is valid as defined (a bad shape would fail here, not after the other runs).
        Assert.All(CrossCheck.Runs, r => r.Config(1));
    }

    [Fact]
    public void AChangeIsInPercentOfTheFigureBefore()
    {
        Assert.Equal(5.75, CrossCheck.Change(21.52, 20.35), 0.001);
        Assert.Equal(-2.045, CrossCheck.Change(118.79, 121.27), 0.001);
        Assert.Throws<InvalidOperationException>(() => CrossCheck.Change(1, 0));
        // The published changes, from the figures of v6 4/4's changelog, and their targets: from 0
        // to twice the change.
        double[] published = [CrossCheck.Change(21.52, 20.35), CrossCheck.Change(81.92, 77.57), CrossCheck.Change(118.79, 121.27), CrossCheck.Change(4152.89, 4245.35)];
        CrossCheckSpec[] pfn = CrossCheck.All.Where(c => c.Name.StartsWith("PFN list", StringComparison.Ordinal)).ToArray();
        Assert.Equal(4, pfn.Length);
        foreach (var (c, p) in pfn.Zip(published))
        {
            Assert.Equal(p, c.Published, 0.01);
            Assert.Equal(Math.Min(0, 2 * p), c.Min, 0.02);
            Assert.Equal(Math.Max(0, 2 * p), c.Max, 0.02);
        }
        // The SWAP_CLUSTER_MAX run is linux-4.3 on the 1-node machine with 256 instead of 32.
        CrossCheckRun scm = CrossCheck.Runs.Single(r => r.Key == "swap-cluster-256");
        Assert.Equal(256, scm.Config(1).Policy.SwapClusterMax);
        Assert.Equal(32, CrossCheck.Runs.Single(r => r.Key == "pfn-list-1node-4.3").Config(1).Policy.SwapClusterMax);
        Assert.Equal(("gorman-1node", "linux-4.3", 8), (scm.Machine, scm.Policy, scm.Scale));
        CrossCheck shown = new([], [new Dictionary<string, RunResult>()], [scm.Config(1)]);
        Assert.Contains("policy linux-4.3, SWAP_CLUSTER_MAX 256", shown.ToText(), StringComparison.Ordinal);
        Assert.Contains("\"swap_cluster_max\":256", shown.ToJsonNode().ToJsonString(), StringComparison.Ordinal);
        // Each PFN-list check compares v6-pfn32 with linux-4.3 on one machine at reproduce's scale.
        foreach (CrossCheckSpec c in CrossCheck.All.Where(c => c.Name.StartsWith("PFN list", StringComparison.Ordinal)))
        {
            CrossCheckRun[] runs = c.Runs.Select(k => CrossCheck.Runs.Single(r => r.Key == k)).ToArray();
            Assert.Equal(["linux-4.3", "v6-pfn32"], runs.Select(r => r.Policy));
            Assert.Single(runs.Select(r => (r.Machine, r.Scale)).Distinct());
            Assert.Equal(runs[0].Machine == "gorman-1node" ? 8 : 16, runs[0].Scale);
        }
    }

    [Fact]
    public void CsvQuotesFieldsWithCommas()
    {
        CrossCheck c = CrossCheck.Run([new("a, b", "ns", 1, 0, 1e9, "0..1e9", "x, \"y\"", ["truncate"], r => CrossCheck.TruncateNsPerPage(r("truncate")))], [SmallTruncate], 1, 1);
        string[] lines = c.ToCsv().TrimEnd('\n').Split('\n');
        Assert.Equal("check,unit,published,simulated,ratio,target,within,source,per_seed", lines[0]);
        Assert.StartsWith("\"a, b\",ns,1,", lines[1], StringComparison.Ordinal);
        Assert.Contains(",0..1e9,true,\"x, \"\"y\"\"\",", lines[1], StringComparison.Ordinal);
        JsonNode j = c.ToJsonNode();
        Assert.Equal(1, (int)j["checks_within"]!);
    }
}
