using System.Text.Json;
using Shootdown.Cli;
using Shootdown.Hardware;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>`sensitivity`: the plan of perturbations, the report's shape in each format, determinism and bad input. Figures' values are not asserted.</summary>
[Collection("console")]
public class SensitivityTests
{
    private static readonly string[] Tiny = ["sensitivity", "--machine", "tiny", "--scale", "1/16", "--constants", "IpiSendNs,clear_page_ns"];

    [Fact]
    public void PlanRoundsClampsAndSkips()
    {
        var costs = CostModel.Xeon2015.With("IpiSendNs", 0).With("FullFlushNs", 1);
        var (ps, skipped) = Sensitivity.Plan(costs, ["IpiSendNs", "FullFlushNs", "PageWalkNs", "TlbEntries", "TickNs"], 0.5);
        Assert.Equal([("IpiSendNs", "0 at baseline (±50% of 0 is 0)")], skipped);
        Perturbation flush = ps.Single(p => p.Constant == "FullFlushNs");
        Assert.Equal((1L, 1L, 2L), (flush.Baseline, flush.Low!.Value, flush.High!.Value)); // 0.5 rounds away from zero, to the baseline
        Assert.Equal("rounds to the baseline", flush.LowNote);
        Perturbation walk = ps.Single(p => p.Constant == "PageWalkNs");
        Assert.Equal((15L, 8L, 23L), (walk.Baseline, walk.Low!.Value, walk.High!.Value));
        Perturbation tlb = ps.Single(p => p.Constant == "TlbEntries");
        Assert.Equal(768, tlb.Low);
        Assert.Null(tlb.High); // 2304 entries are not 12 ways times a power of two
        Assert.Contains("2304", tlb.HighNote, StringComparison.Ordinal);
        var (tick, _) = Sensitivity.Plan(CostModel.Xeon2015.With("TickNs", 1500), ["TickNs"], 0.5);
        Assert.Equal((1000L, "clamped to 1000..1000000000"), (tick[0].Low!.Value, tick[0].LowNote)); // TickNs is at least 1000
        Assert.Equal(CostModel.Names.Count, Sensitivity.Plan(CostModel.Xeon2015, CostModel.Names, 0.5).Perturbations.Count + Sensitivity.Plan(CostModel.Xeon2015, CostModel.Names, 0.5).Skipped.Count);
    }

    [Fact]
    public void TableHasATornadoPerFigureAndTheConfiguration()
    {
        string svg = Path.Combine(TestKit.TempDir(), "t.svg");
        var (code, stdout, stderr) = CliTests.Cli([.. Tiny, "--plot", svg, "--figure", "rfc-pfn32 system_s"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("Sensitivity of the reproduction on tiny (lru-file-mmap-read, 1x4 CPUs, 16 MiB at scale 1/16, seed 1; policies vanilla, rfc-pfn32, rfc-pfn-page, linux-4.3)", stdout, StringComparison.Ordinal);
        Assert.Contains("2 constants, 20 runs", stdout, StringComparison.Ordinal);
        // a machine without a reproduction: each policy's elapsed, user and system time and interrupt rate
        string[] blocks = stdout.Split('\n').Where(l => l.Contains(" at baseline", StringComparison.Ordinal)).ToArray();
        Assert.Equal(16, blocks.Length);
        Assert.StartsWith("vanilla elapsed_s: ", blocks[0], StringComparison.Ordinal);
        Assert.Contains("Replay: shootdown compare --workload lru-file-mmap-read --policies vanilla,rfc-pfn32,rfc-pfn-page,linux-4.3 --machine tiny --scale 1/16 --seed 1", stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(svg) && new FileInfo(svg).Length > 0);
        Assert.Contains("<svg", File.ReadAllText(svg), StringComparison.Ordinal);
    }

    [Fact]
    public void JsonAndCsvParseAndRunsAreDeterministic()
    {
        var (code, json1, stderr) = CliTests.Cli([.. Tiny, "--format", "json", "--jobs", "1"]);
        Assert.True(code == 0, stderr);
        var (_, json2, _) = CliTests.Cli([.. Tiny, "--format", "json", "--jobs", "2"]);
        Assert.Equal(json1, json2); // same seed, same report, whatever the parallelism
        using var doc = JsonDocument.Parse(json1);
        var root = doc.RootElement;
        Assert.Equal(0.5, root.GetProperty("delta").GetDouble());
        Assert.Equal("tiny", root.GetProperty("base_config").GetProperty("machine").GetString());
        Assert.Equal(60, root.GetProperty("base_config").GetProperty("costs").GetProperty("ipi_send_ns").GetInt64());
        var ps = root.GetProperty("perturbations").EnumerateArray().ToArray();
        Assert.Equal(["IpiSendNs", "ClearPageNs"], ps.Select(p => p.GetProperty("constant").GetString()));
        Assert.Equal((30, 90), (ps[0].GetProperty("low").GetInt64(), ps[0].GetProperty("high").GetInt64()));
        var figures = root.GetProperty("figures").EnumerateArray().ToArray();
        Assert.Equal(16, figures.Length);
        foreach (var f in figures)
        {
            var swings = f.GetProperty("constants").EnumerateArray().Select(c => c.GetProperty("swing").GetDouble()).ToArray();
            Assert.Equal(2, swings.Length);
            Assert.True(swings[0] >= swings[1], "constants are sorted by swing");
        }
        // The base configuration replays: `run --config` takes it as it is.
        string cfgFile = TestKit.TempFile("base.json", root.GetProperty("base_config").GetRawText());
        Assert.Equal(CostModel.Xeon2015, ConfigFile.Load(cfgFile).Costs);

        var (_, csv, _) = CliTests.Cli([.. Tiny, "--format", "csv", "--jobs", "2"]);
        string[] lines = csv.TrimEnd('\n').Split('\n');
        Assert.Equal("machine,figure,figure_baseline,constant,constant_baseline,constant_low,constant_high,figure_low,figure_high,change_low,change_high,change_unit,swing,figure_baseline_stddev,noise_band,within_noise", lines[0]);
        Assert.Equal(1 + 16 * 2, lines.Length);
        Assert.All(lines.Skip(1), l => Assert.Equal(16, l.Split(',').Length));
        Assert.All(lines.Skip(1), l => Assert.EndsWith(",,,", l, StringComparison.Ordinal)); // one seed: no noise band
        Assert.Equal(1, root.GetProperty("repeat").GetInt32());
        Assert.Equal(JsonValueKind.Null, figures[0].GetProperty("noise_band").ValueKind);
        Assert.StartsWith("tiny,vanilla elapsed_s,", lines[1], StringComparison.Ordinal);
        // CSV and JSON report the same numbers
        string first = figures[0].GetProperty("constants")[0].GetProperty("constant").GetString()!;
        Assert.Equal(first, lines[1].Split(',')[3]);
        Assert.Equal(figures[0].GetProperty("baseline").GetDouble(), double.Parse(lines[1].Split(',')[2], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void AConstantZeroAtBaselineIsSkippedAndSaidSo()
    {
        string m = TestKit.TempFile("z.toml", "name = \"zero\"\nnodes = 1\ncpus_per_node = 2\nmemory = \"64MiB\"\n[hardware]\nipi_send_ns = 0\n");
        var (code, stdout, stderr) = CliTests.Cli("sensitivity", "--machine", m, "--scale", "1/4", "--constants", "IpiSendNs,TickNs");
        Assert.True(code == 0, stderr);
        Assert.Contains("skipped IpiSendNs: 0 at baseline (±50% of 0 is 0)", stdout, StringComparison.Ordinal);
        Assert.Contains("1 constants, 12 runs", stdout, StringComparison.Ordinal);
        Assert.Contains($"--machine {m} --scale 1/4", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("unknown cost constant 'Nope'", "sensitivity", "--constants", "IpiSendNs,Nope")]
    [InlineData("--delta must be a number between 0 and 1 (exclusive), e.g. 0.5 for ±50%, got '1'", "sensitivity", "--delta", "1")]
    [InlineData("--delta must be a number between 0 and 1 (exclusive), e.g. 0.5 for ±50%, got '0'", "sensitivity", "--delta", "0")]
    [InlineData("--delta must be a number between 0 and 1 (exclusive), e.g. 0.5 for ±50%, got '-0.2'", "sensitivity", "--delta", "-0.2")]
    [InlineData("--delta must be a number between 0 and 1 (exclusive), e.g. 0.5 for ±50%, got 'x'", "sensitivity", "--delta", "x")]
    [InlineData("cost constant IpiSendNs appears twice in --constants", "sensitivity", "--constants", "IpiSendNs,ipi_send_ns")]
    [InlineData("malformed --constants", "sensitivity", "--constants", "IpiSendNs,")]
    [InlineData("ThreadsPerCore in --constants: it describes the cores' topology, not a cost", "sensitivity", "--constants", "threads_per_core")]
    [InlineData("SmtThroughputPct in --constants: its range is 100..200", "sensitivity", "--constants", "smt_throughput_pct")]
    [InlineData("--jobs must be in 1..1024, got 0", "sensitivity", "--jobs", "0")]
    [InlineData("--repeat must be in 1..1000, got 0", "sensitivity", "--repeat", "0")]
    [InlineData("unknown --format 'xml'", "sensitivity", "--format", "xml")]
    [InlineData("unknown machine preset 'nope'", "sensitivity", "--machine", "nope")]
    [InlineData("--figure picks the figure of the --plot chart", "sensitivity", "--figure", "vanilla user_s")]
    [InlineData("unknown --figure 'nope'; figures of gorman-1node: vanilla elapsed_s, rfc-pfn32 elapsed_s", "sensitivity", "--machine", "gorman-1node", "--plot", "/tmp/shootdown-t.png", "--figure", "nope")]
    [InlineData("--plot '/tmp/t.pdf' must end in .png or .svg", "sensitivity", "--plot", "/tmp/t.pdf")]
    [InlineData("cannot write --plot '/proc/shootdown-x.png'", "sensitivity", "--plot", "/proc/shootdown-x.png")]
    public void BadInputIsOneLineAndExit2(string expected, params string[] args) => CliTests.AssertRefused(expected, args);

    [Fact]
    public void RunIsDeterministicAndSortedBySwing()
    {
        RunConfig cfg = RunConfig.Create(machine: "tiny", scaleDivisor: 16);
        ReproductionSpec spec = ReproductionSpec.FiguresOnly("tiny") with { Policies = ["vanilla", "rfc-pfn32"], Checks = [ReproductionCheck.Unpublished("vanilla", "elapsed_s"), ReproductionCheck.Faster("rfc-pfn32", "vanilla", double.NaN, double.NegativeInfinity, double.PositiveInfinity, "")] };
        Sensitivity a = Sensitivity.Run(cfg, spec, ["ClearPageNs", "IpiSendNs", "CopyPageNs"], 0.25, jobs: 2);
        Sensitivity b = Sensitivity.Run(cfg, spec, ["ClearPageNs", "IpiSendNs", "CopyPageNs"], 0.25, jobs: 1);
        Assert.Equal(a.ToJson(), b.ToJson());
        Assert.Equal((450L, 750L), (a.Perturbations[0].Low!.Value, a.Perturbations[0].High!.Value)); // ClearPageNs 600 at ±25%
        foreach (FigureSensitivity f in a.Figures)
        {
            Assert.Equal(f.Changes.OrderByDescending(c => c.Swing).ThenBy(c => c.Constant, StringComparer.Ordinal).Select(c => c.Constant), f.Changes.Select(c => c.Constant));
        }
        Assert.True(a.Figures[1].IsPercentage); // a gain: its changes are in points
        Assert.Equal("pt", a.Figures[1].ChangeUnit);
        FigureChange copy = a.Figures[0].Changes.Single(c => c.Constant == "CopyPageNs");
        Assert.Equal((0.0, 0.0), (copy.ChangeLow!.Value, copy.ChangeHigh!.Value)); // lru-file-mmap-read copies no page
        Assert.Contains("no change: CopyPageNs", a.ToText("tiny"), StringComparison.Ordinal);
    }

    [Fact]
    public void RepeatedSeedsAverageTheFiguresAndGiveTheirNoiseBand()
    {
        RunConfig cfg = RunConfig.Create(machine: "tiny", scaleDivisor: 16);
        ReproductionSpec spec = ReproductionSpec.FiguresOnly("tiny") with { Policies = ["vanilla", "rfc-pfn32"], Checks = [ReproductionCheck.Unpublished("vanilla", "elapsed_s"), ReproductionCheck.Faster("rfc-pfn32", "vanilla", double.NaN, double.NegativeInfinity, double.PositiveInfinity, "")] };
        string[] constants = ["ClearPageNs", "IpiSendNs"];
        Sensitivity two = Sensitivity.Run(cfg, spec, constants, 0.5, jobs: 2, repeat: 2);
        Sensitivity s1 = Sensitivity.Run(cfg, spec, constants, 0.5, jobs: 2);
        Sensitivity s2 = Sensitivity.Run(cfg with { Seed = 2 }, spec, constants, 0.5, jobs: 2);
        Assert.Equal(2, two.Repeat);
        Assert.Equal(1, s1.Repeat);

        // vanilla elapsed_s is a plain figure: the mean over the seeds, baseline and both sides.
        FigureSensitivity f = two.Figures[0], a = s1.Figures[0], b = s2.Figures[0];
        Assert.Equal((a.Baseline + b.Baseline) / 2, f.Baseline, 12);
        foreach (FigureChange c in f.Changes)
        {
            FigureChange ca = a.Changes.Single(x => x.Constant == c.Constant), cb = b.Changes.Single(x => x.Constant == c.Constant);
            Assert.Equal((ca.FigureLow!.Value + cb.FigureLow!.Value) / 2, c.FigureLow!.Value, 12);
            Assert.Equal((ca.FigureHigh!.Value + cb.FigureHigh!.Value) / 2, c.FigureHigh!.Value, 12);
            Assert.Equal(c.Swing < f.NoiseBand!.Value, c.WithinNoise);
        }
        // Two seeds: the sample standard deviation is |x1 - x2| / sqrt 2, the band t(1) sd sqrt(2/2)
        // with Student's t for one degree of freedom, 12.706, in percent of the mean.
        double sd = Math.Abs(a.Baseline - b.Baseline) / Math.Sqrt(2);
        Assert.Equal(sd, f.BaselineStdDev!.Value, 9);
        Assert.Equal(12.706 * sd / f.Baseline * 100, f.NoiseBand!.Value, 9);
        Assert.True(sd > 0, "two seeds of a reclaiming run differ");
        // A gain is in points: its band is in points too, from the gains seed by seed.
        double ga = s1.Figures[1].Baseline, gb = s2.Figures[1].Baseline;
        Assert.Equal(12.706 * Math.Abs(ga - gb) / Math.Sqrt(2), two.Figures[1].NoiseBand!.Value, 9);
        // One seed knows no noise.
        Assert.All(s1.Figures, x => Assert.Null(x.NoiseBand));
        Assert.All(s1.Figures.SelectMany(x => x.Changes), x => Assert.Null(x.WithinNoise));
        Assert.Throws<ConfigException>(() => Sensitivity.Run(cfg, spec, constants, 0.5, jobs: 1, repeat: 0));
    }

    [Fact]
    public void RepeatIsInEveryOutputAndTheReplay()
    {
        string[] args = ["sensitivity", "--machine", "tiny", "--scale", "1/16", "--constants", "IpiSendNs", "--repeat", "2", "--jobs", "2"];
        string svg = Path.Combine(TestKit.TempDir(), "noise.svg");
        var (code, text, stderr) = CliTests.Cli([.. args, "--plot", svg]);
        Assert.True(code == 0, stderr);
        Assert.Contains("noise band (±", File.ReadAllText(svg), StringComparison.Ordinal); // the band is shaded and named
        Assert.Contains("16 MiB at scale 1/16, seeds 1..2 (means); policies", text, StringComparison.Ordinal);
        Assert.Contains("1 constants, 24 runs", text, StringComparison.Ordinal);
        Assert.Contains("Each figure is its mean over 2 seeds", text, StringComparison.Ordinal);
        Assert.Contains("over the seeds; noise band ", text, StringComparison.Ordinal);
        Assert.Contains("--seed 1 --repeat 2 [--cost NAME=VALUE", text, StringComparison.Ordinal);
        var (_, json, _) = CliTests.Cli([.. args, "--format", "json"]);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(2, doc.RootElement.GetProperty("repeat").GetInt32());
        var fig = doc.RootElement.GetProperty("figures")[0];
        Assert.True(fig.GetProperty("baseline_stddev").GetDouble() > 0);
        var c0 = fig.GetProperty("constants")[0];
        Assert.Equal(c0.GetProperty("swing").GetDouble() < fig.GetProperty("noise_band").GetDouble(), c0.GetProperty("within_noise").GetBoolean());
        var (_, csv, _) = CliTests.Cli([.. args, "--format", "csv"]);
        string row = csv.Split('\n')[1];
        Assert.Equal(16, row.Split(',').Length);
        Assert.Matches(",(true|false)$", row);
    }

    [Fact]
    public void StudentQuantilesAreTheTablesAndFallTowardTheNormal()
    {
        Assert.Equal(12.706, Sensitivity.StudentT975(1));
        Assert.Equal(4.303, Sensitivity.StudentT975(2)); // three seeds
        Assert.Equal(2.365, Sensitivity.StudentT975(7)); // eight seeds
        Assert.Equal(2.042, Sensitivity.StudentT975(30));
        Assert.Equal(1.960, Sensitivity.StudentT975(1000));
        double last = double.PositiveInfinity;
        for (int df = 1; df <= 200; df++)
        {
            double t = Sensitivity.StudentT975(df);
            Assert.True(t <= last && t >= 1.96, $"t({df}) = {t}");
            last = t;
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => Sensitivity.StudentT975(0));
    }
}
