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
        Assert.Equal("machine,figure,figure_baseline,constant,constant_baseline,constant_low,constant_high,figure_low,figure_high,change_low,change_high,change_unit,swing", lines[0]);
        Assert.Equal(1 + 16 * 2, lines.Length);
        Assert.All(lines.Skip(1), l => Assert.Equal(13, l.Split(',').Length));
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
    [InlineData("--jobs must be in 1..1024, got 0", "sensitivity", "--jobs", "0")]
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
}
