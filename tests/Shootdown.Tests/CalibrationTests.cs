using System.Globalization;
using System.Text.Json;
using Shootdown.Cli;
using Shootdown.Hardware;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>`calibrate`: the bounds, the loss, the search's determinism and bounds on a tiny machine, and bad input. Figures' values are not asserted.</summary>
[Collection("console")]
public class CalibrationTests
{
    [Fact]
    public void EveryBoundIsAKernelPathConstantWhoseDefaultLiesWithinIt()
    {
        Assert.NotEmpty(CostModel.Bounds);
        var defaults = new CostModel();
        foreach (var (name, bound) in CostModel.Bounds)
        {
            Assert.Contains(name, CostModel.Names);
            Assert.False(CostModel.IsHardware(name), $"{name} is a hardware constant: machine files give it");
            Assert.False(string.IsNullOrWhiteSpace(bound.Source));
            var (min, max) = bound.Range;
            Assert.True(min >= (bound.Basis + 1) / 2 && min * 2 >= bound.Basis && max == bound.Basis * 2, $"{name}: {min}..{max} is not half to twice {bound.Basis}");
            var (allowedMin, allowedMax) = CostModel.Range(name);
            Assert.True(min >= allowedMin && max <= allowedMax, $"{name}: bounds {min}..{max} outside the constant's range {allowedMin}..{allowedMax}");
            long value = defaults.Get(name);
            Assert.True(value >= min && value <= max, $"{name} = {value} is outside its bounds {min}..{max}");
        }
        // The default search: every bounded constant but the read(2) path's, which the seed's workload never uses.
        Assert.Contains(nameof(CostModel.ReadSyscallNs), CostModel.Bounds.Keys);
        Assert.DoesNotContain(nameof(CostModel.ReadSyscallNs), Calibration.DefaultConstants);
        Assert.Contains(nameof(CostModel.LruPerPageNs), Calibration.DefaultConstants);
        Assert.Equal(CostModel.Bounds.Count - 1, Calibration.DefaultConstants.Count);
    }

    private static Comparison? _tinyRun;

    /// <summary>One small run to hang checks on (the checks below compute fixed figures).</summary>
    private static Comparison TinyRun => _tinyRun ??= Comparison.Run(RunConfig.Create(machine: "tiny", scaleDivisor: 64), ["vanilla"], repeat: 1);

    private static ReproductionCheck Fixed(double simulated, double min, double max) =>
        new($"figure {simulated}", _ => simulated, (min + max) / 2, "test", min, max, $"{min}..{max}", false);

    private static Reproduction Rep(params ReproductionCheck[] checks) =>
        new(new ReproductionSpec("tiny", "test", 64, ["vanilla"], checks), TinyRun);

    [Fact]
    public void LossIsZeroWhenEveryCheckHoldsAndGrowsWithTheDistance()
    {
        Assert.Equal(0, Calibration.Loss([Rep(Fixed(5, 0, 10), Fixed(0, 0, 10), Fixed(10, 0, 10)), Rep(Fixed(-3, -5, 5))]));
        Assert.Equal(0, Calibration.Loss([Rep(ReproductionCheck.Unpublished("vanilla", "elapsed_s"))])); // no published figure: no range to miss
        // (distance / half the range)^2: half of 0..10 is 5
        Assert.Equal(1, Calibration.Loss([Rep(Fixed(15, 0, 10))]), 12);
        Assert.Equal(1, Calibration.Loss([Rep(Fixed(-5, 0, 10))]), 12);
        Assert.Equal(4, Calibration.Loss([Rep(Fixed(20, 0, 10))]), 12);
        // summed over checks and machines
        Assert.Equal(5, Calibration.Loss([Rep(Fixed(15, 0, 10), Fixed(5, 0, 10)), Rep(Fixed(20, 0, 10))]), 12);
        // a tolerance: ±25% of 100 is 75..125, so 130 is 5 past a half-width of 25
        var tolerance = new ReproductionCheck("t", _ => 130, 100, "test", 75, 125, "±25%", false, 0.25);
        Assert.Equal(0.04, Calibration.Loss([Rep(tolerance)]), 12);
        double[] losses = new[] { 10.0, 10.5, 11, 12, 20, 100 }.Select(x => Calibration.Loss([Rep(Fixed(x, 0, 10))])).ToArray();
        Assert.Equal(0, losses[0]);
        for (int i = 1; i < losses.Length; i++)
        {
            Assert.True(losses[i] > losses[i - 1], $"loss {losses[i]} at step {i} does not grow past {losses[i - 1]}");
        }
    }

    /// <summary>A tiny machine's spec with checks the default constants miss (the search has something to do).</summary>
    private static readonly ReproductionSpec TinySpec = new("tiny", "test", 16, ["vanilla", "rfc-pfn32"],
    [
        ReproductionCheck.InRange("vanilla", "system_s", 10, 5, 15, "test"),
        ReproductionCheck.Faster("rfc-pfn32", "vanilla", 40, 35, 45, "test"),
        ReproductionCheck.InRange("vanilla", "interrupts_per_s", 1, 0, 2, "test"),
    ]);

    [Fact]
    public void AShortSearchIsDeterministicStaysWithinTheBoundsAndNeverEndsAboveItsStart()
    {
        string[] constants = ["ScanPageNs", "fault_entry_ns"];
        Calibration a = Calibration.Run([TinySpec], seed: 1, constants, searchScaleFactor: 2, maxEvaluations: 3, jobs: 1);
        Calibration b = Calibration.Run([TinySpec], seed: 1, constants, searchScaleFactor: 2, maxEvaluations: 3, jobs: 2);
        Assert.Equal(TestKit.WithoutWallTime(a.ToJson()), TestKit.WithoutWallTime(b.ToJson())); // same options, same trajectory, whatever the parallelism
        Assert.Equal(a.ToCsv(), b.ToCsv());

        Assert.Equal(["ScanPageNs", "FaultEntryNs"], a.Constants);
        Assert.Equal([32], a.SearchScales);
        Assert.Equal(16, a.Final.Single().Scale);
        Assert.Equal(3, a.Steps.Count); // the start, then ScanPageNs one step down and one up
        Assert.Equal((0, (string?)null, true), (a.Steps[0].Index, a.Steps[0].Constant, a.Steps[0].Accepted));
        Assert.All(a.Steps.Skip(1), s => Assert.Equal("ScanPageNs", s.Constant));
        Assert.Equal([113L, 226L], a.Steps.Skip(1).Select(s => s.Value!.Value)); // 160 / and x sqrt(2), rounded
        Assert.Equal(CostModel.Bounds["ScanPageNs"].Basis, a.Start["ScanPageNs"]); // the search starts from the bases
        AssertWithinBounds(a);
        Assert.True(a.Steps[0].Loss > 0, "the tiny spec's checks are missed at the start");
        double best = a.Steps.Where(s => s.Accepted).Last().Loss;
        Assert.True(a.Steps[0].Loss >= best);
        Assert.Equal(a.Steps.Min(s => s.Loss), best, 9); // a lower candidate would have been kept
        Assert.True(a.Steps.Count(s => s.Accepted && s.Index > 0) <= 1, "one of the two candidates is kept at most");

        string[] csv = a.ToCsv().TrimEnd('\n').Split('\n');
        Assert.Equal("index,constant,value,loss,within,checks,kept", csv[0]);
        Assert.Equal(4, csv.Length);
        Assert.StartsWith("0,,,", csv[1], StringComparison.Ordinal);
        Assert.All(csv.Skip(1), l => Assert.Equal(7, l.Split(',').Length));
        Assert.EndsWith(",3,true", csv[1], StringComparison.Ordinal);
        Assert.Contains("Replay: shootdown reproduce --machine tiny --seed 1", a.ToText(), StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(a.ToJson());
        Assert.Equal(a.AllWithin, doc.RootElement.GetProperty("all_within").GetBoolean());
        Assert.Equal(3, doc.RootElement.GetProperty("steps").GetArrayLength());
        // Each step names the checks it left outside: as many as it did not put within.
        Assert.All(a.Steps, s => Assert.Equal(s.Checks - s.Within, s.Outside.Count));
        Assert.All(a.Steps.SelectMany(s => s.Outside), o => Assert.StartsWith("tiny: ", o, StringComparison.Ordinal));
        Assert.Equal(a.Steps[0].Outside.Count, doc.RootElement.GetProperty("steps")[0].GetProperty("outside").GetArrayLength());
    }

    /// <summary>A check on the cost model itself: the run's value of <paramref name="constant"/> must lie in min..max.</summary>
    private static ReproductionCheck ConstantIn(string constant, double min, double max) =>
        new(constant, r => Convert.ToDouble(typeof(CostModel).GetProperty(constant)!.GetValue(r.Comparison.Baseline.Runs[0].Config.Costs), CultureInfo.InvariantCulture),
            (min + max) / 2, "test", min, max, "", false);

    [Fact]
    public void ASearchPushedPastItsBoundsStopsAtThem()
    {
        // Targets beyond the bounds (the loss falls as FaultEntryNs rises and as ScanPageNs falls, and
        // nothing else moves it): each constant climbs or sinks to its bound, then the step halves
        // down to 2^(1/8) with nothing to gain and the search stops.
        var spec = new ReproductionSpec("tiny", "test", 64, ["vanilla"], [ConstantIn("FaultEntryNs", 1e6, 2e6), ConstantIn("ScanPageNs", -20, -10)]);
        Calibration c = Calibration.Run([spec], seed: 1, ["FaultEntryNs", "ScanPageNs"], searchScaleFactor: 1, maxEvaluations: 50, jobs: 2);
        AssertWithinBounds(c);
        Assert.Equal(CostModel.Bounds["FaultEntryNs"].Range.Max, c.Best["FaultEntryNs"]);
        Assert.Equal(CostModel.Bounds["ScanPageNs"].Range.Min, c.Best["ScanPageNs"]);
        Assert.True(c.Steps.Count < 50, "the search converges before its budget");
        // FaultEntryNs: 1000 -> 1414 -> 2000; at the bound only the step down is tried, at sqrt(2), 2^(1/4) and 2^(1/8)
        Assert.Equal([707L, 1414, 1000, 2000, 1414, 1682, 1834], c.Steps.Where(s => s.Constant == "FaultEntryNs").Select(s => s.Value!.Value));
        Assert.Equal([160L, 113, 80], c.Steps.Where(s => s.Accepted && s.Constant is null or "ScanPageNs").Select(s => s.Value ?? 160));
        CalibrationStep[] keptSteps = c.Steps.Where(s => s.Accepted).ToArray();
        double[] kept = keptSteps.Select(s => s.Loss).ToArray();
        for (int i = 1; i < keptSteps.Length; i++)
        {
            Assert.True(keptSteps[i].Within > keptSteps[i - 1].Within
                || (keptSteps[i].Within == keptSteps[i - 1].Within && kept[i] < kept[i - 1]),
                "every kept step puts more checks within, or as many with a lower loss");
        }
        Assert.Equal(64, c.Final[0].Scale); // factor 1: the final check is the search's own runs at the spec's scale
        Assert.Equal(kept[^1], Calibration.Loss(c.Final), 9);
        Assert.Equal("--cost fault_entry_ns=2000 --cost scan_page_ns=80", c.CostArguments);
        AssertReplayRunsTheBestPoint(c);
    }

    [Fact]
    public void RepeatedSeedsJudgeEachPointOnItsMeans()
    {
        Calibration c = Calibration.Run([TinySpec], seed: 3, ["LockAcquireNs"], searchScaleFactor: 1, maxEvaluations: 1, jobs: 2, repeat: 2);
        Assert.Equal(2, c.Repeat);
        // The start's checks are those of `reproduce --repeat 2` at that point: means over seeds 3 and 4.
        RunConfig cfg = RunConfig.Create(machine: "tiny", scaleDivisor: 16, policy: "vanilla", seed: 3);
        cfg = cfg with { Costs = cfg.Costs.With("LockAcquireNs", c.Start["LockAcquireNs"]) };
        var means = new Reproduction(TinySpec, Comparison.Run(cfg, TinySpec.Policies, repeat: 2));
        Assert.Equal(means.Rows().Select(r => r.Simulated), c.Final[0].Rows().Select(r => r.Simulated));
        Assert.Equal(Calibration.Loss([means]), c.Steps[0].Loss, 12);
        var one = new Reproduction(TinySpec, Comparison.Run(cfg, TinySpec.Policies, repeat: 1));
        Assert.NotEqual(one.Rows().Select(r => r.Simulated), means.Rows().Select(r => r.Simulated)); // the second seed counts
        Assert.Contains("seeds 3..4 (means)", c.ToText(), StringComparison.Ordinal);
        Assert.Equal(["shootdown reproduce --machine tiny --seed 3 --repeat 2 --cost lock_acquire_ns=8"], c.ReplayCommands);
        Assert.Equal(2, JsonDocument.Parse(c.ToJson()).RootElement.GetProperty("repeat").GetInt32());
        Assert.Throws<ConfigException>(() => Calibration.Run([TinySpec], 3, ["LockAcquireNs"], 1, 1, 1, repeat: 0));
    }

    [Fact]
    public void OneEvaluationIsTheStartAlone()
    {
        Calibration c = Calibration.Run([TinySpec], seed: 3, ["LockAcquireNs"], searchScaleFactor: 4, maxEvaluations: 1, jobs: 1);
        Assert.Single(c.Steps);
        Assert.Equal(c.Start, c.Best);
        // The search ran LockAcquireNs at its basis (8), the default is the earlier search's 16:
        // the replay must say so, or `reproduce` would run another point.
        Assert.Equal("--cost lock_acquire_ns=8", c.CostArguments);
        Assert.Equal(["shootdown reproduce --machine tiny --seed 3 --cost lock_acquire_ns=8"], c.ReplayCommands);
        AssertReplayRunsTheBestPoint(c);
    }

    [Fact]
    public void ASearchFromTheDefaultsStartsAtThemAndItsReplayNeedsNoCostForTheUnmoved()
    {
        // LockAcquireNs's default (16) differs from its basis (8), so the two starts differ.
        Assert.NotEqual(CostModel.Bounds["LockAcquireNs"].Basis, CostModel.Xeon2015.LockAcquireNs);
        Calibration c = Calibration.Run([TinySpec], seed: 3, ["LockAcquireNs", "ScanPageNs"], searchScaleFactor: 4, maxEvaluations: 3, jobs: 2,
            startFrom: CalibrationStart.Defaults);
        Assert.Equal(CalibrationStart.Defaults, c.StartFrom);
        Assert.Equal(CostModel.Xeon2015.LockAcquireNs, c.Start["LockAcquireNs"]);
        Assert.Equal(CostModel.Xeon2015.ScanPageNs, c.Start["ScanPageNs"]);
        // The first constant's candidates are its default divided and multiplied by sqrt(2), held
        // within the bounds; one that the bounds bring back to the default is not run (the default
        // sits at the top of its bounds: then the second step is the next constant's).
        long d = CostModel.Xeon2015.LockAcquireNs;
        var (min, max) = CostModel.Bounds["LockAcquireNs"].Range;
        long[] expected = new[] { d / Math.Sqrt(2), d * Math.Sqrt(2) }
            .Select(x => Math.Clamp((long)Math.Round(x, MidpointRounding.AwayFromZero), min, max)).Where(x => x != d).ToArray();
        Assert.Equal(expected, c.Steps.Skip(1).Where(s => s.Constant == "LockAcquireNs").Select(s => s.Value!.Value));
        Assert.Equal("LockAcquireNs", c.Steps[1].Constant);
        AssertWithinBounds(c);
        AssertReplayRunsTheBestPoint(c);
        foreach (string n in c.Constants)
        {
            // Only what moved from the defaults needs a --cost to replay.
            Assert.Equal(c.Best[n] != c.Start[n], c.CostArguments.Contains(CostModel.SnakeCase(n) + "=", StringComparison.Ordinal));
        }
        using var doc = JsonDocument.Parse(c.ToJson());
        Assert.Equal("defaults", doc.RootElement.GetProperty("start_from").GetString());
        Assert.Contains("from their defaults;", c.ToText(), StringComparison.Ordinal);
        Calibration fromBases = Calibration.Run([TinySpec], seed: 3, ["LockAcquireNs", "ScanPageNs"], searchScaleFactor: 4, maxEvaluations: 1, jobs: 1);
        Assert.Equal("bases", JsonDocument.Parse(fromBases.ToJson()).RootElement.GetProperty("start_from").GetString());
        Assert.Equal(CostModel.Bounds["LockAcquireNs"].Basis, fromBases.Start["LockAcquireNs"]);
    }

    /// <summary>What the replay's `--cost` arguments leave each searched constant at is its best value.</summary>
    private static void AssertReplayRunsTheBestPoint(Calibration c)
    {
        var args = c.CostArguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Where(a => a != "--cost").Select(a => a.Split('=')).ToDictionary(a => a[0], a => long.Parse(a[1], System.Globalization.CultureInfo.InvariantCulture));
        CostModel replay = CostModel.Xeon2015;
        foreach (var (key, value) in args)
        {
            replay = replay.With(key, value);
        }
        foreach (string n in c.Constants)
        {
            Assert.Equal(c.Best[n], replay.Get(n));
        }
    }

    private static void AssertWithinBounds(Calibration c)
    {
        foreach (CalibrationStep s in c.Steps.Where(s => s.Constant is not null))
        {
            var (min, max) = CostModel.Bounds[s.Constant!].Range;
            Assert.InRange(s.Value!.Value, min, max);
        }
        foreach (var (name, value) in c.Best)
        {
            var (min, max) = CostModel.Bounds[name].Range;
            Assert.InRange(value, min, max);
        }
    }

    [Theory]
    [InlineData(null, "bases")]
    [InlineData("defaults", "defaults")]
    public void TheCommandRunsOneMachineAndExitsByItsFinalChecks(string? startOption, string startFrom)
    {
        string[] args = ["calibrate", "--machine", "gorman-1node", "--constants", "IrqEntryExitNs", "--max-evaluations", "2", "--search-scale-factor", "16", "--format", "json"];
        var (code, stdout, stderr) = CliTests.Cli(startOption is null ? args : [.. args, "--start", startOption]);
        Assert.True(code is ShootdownCli.ExitOk or ShootdownCli.ExitOutOfTolerance, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal(["gorman-1node"], root.GetProperty("machines").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal([128], root.GetProperty("search_scale_divisors").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(2, root.GetProperty("steps").GetArrayLength());
        var final = root.GetProperty("final").EnumerateArray().Single();
        Assert.Equal(8, final.GetProperty("scale_divisor").GetInt32()); // the final check at the reproduce scale
        bool all = final.GetProperty("checks").EnumerateArray().All(c => c.GetProperty("within").GetBoolean());
        Assert.Equal(all, root.GetProperty("all_within").GetBoolean());
        Assert.Equal(all ? ShootdownCli.ExitOk : ShootdownCli.ExitOutOfTolerance, code);
        var constant = root.GetProperty("constants").EnumerateArray().Single();
        Assert.Equal(("irq_entry_exit_ns", 150, 600), (constant.GetProperty("key").GetString(), constant.GetProperty("min").GetInt64(), constant.GetProperty("max").GetInt64()));
        Assert.Equal(startFrom, root.GetProperty("start_from").GetString());
        // Without --start the search starts from the basis (300); with --start defaults from the default (424).
        Assert.Equal(startOption is null ? CostModel.Bounds["IrqEntryExitNs"].Basis : CostModel.Xeon2015.IrqEntryExitNs, constant.GetProperty("start").GetInt64());
    }

    [Theory]
    [InlineData("unknown cost constant 'Nope'", "calibrate", "--constants", "ScanPageNs,Nope")]
    [InlineData("cost constant IpiSendNs is a hardware constant (each machine file gives it, with its source); the search moves kernel-path constants only; searchable: IrqEntryExitNs, FaultEntryNs", "calibrate", "--constants", "ipi_send_ns")]
    [InlineData("cost constant TickNs has no documented bounds, so the search does not move it; searchable: IrqEntryExitNs", "calibrate", "--constants", "TickNs")]
    [InlineData("cost constant ScanPageNs appears twice in --constants", "calibrate", "--constants", "ScanPageNs,scan_page_ns")]
    [InlineData("--max-evaluations must be in 1..100000, got 0", "calibrate", "--max-evaluations", "0")]
    [InlineData("--max-evaluations must be an integer in 1..100000, got 'many'", "calibrate", "--max-evaluations", "many")]
    [InlineData("--search-scale-factor must be in 1..1048576, got 0", "calibrate", "--search-scale-factor", "0")]
    [InlineData("--search-scale-factor 512 runs gorman-4node at 1/8192: memory too small", "calibrate", "--search-scale-factor", "512")]
    [InlineData("--jobs must be in 1..1024, got 0", "calibrate", "--jobs", "0")]
    [InlineData("--repeat must be in 1..1000, got 0", "calibrate", "--repeat", "0")]
    [InlineData("--seed must be an integer in 0..18446744073709551615, got 'x'", "calibrate", "--seed", "x")]
    [InlineData("unknown --format 'xml'; allowed: table, json, csv", "calibrate", "--format", "xml")]
    [InlineData("unknown --start 'here'; allowed: bases, defaults", "calibrate", "--start", "here")]
    [InlineData("calibrate has no reproduction of machine 'tiny'; allowed: gorman-4node, gorman-1node", "calibrate", "--machine", "tiny")]
    [InlineData("machine gorman-1node appears twice in --machine", "calibrate", "--machine", "gorman-1node", "--machine", "gorman-4node,gorman-1node")]
    [InlineData("malformed --machine 'gorman-1node,'", "calibrate", "--machine", "gorman-1node,")]
    public void BadInputIsOneLineAndExit2(string expected, params string[] args) => CliTests.AssertRefused(expected, args);

    [Fact]
    public void PlanRefusesWhatTheLibraryIsGivenBadly()
    {
        Assert.Contains("at least one machine", Assert.Throws<ConfigException>(() => Calibration.Plan([], ["ScanPageNs"], 1, 1)).Message, StringComparison.Ordinal);
        Assert.Contains("--max-evaluations must be a positive integer, got 0", Assert.Throws<ConfigException>(() => Calibration.Run([TinySpec], 1, ["ScanPageNs"], 1, 0, 1)).Message, StringComparison.Ordinal);
        Assert.Contains("appears twice", Assert.Throws<ConfigException>(() => Calibration.Plan([TinySpec], ["ScanPageNs", "scan_page_ns"], 1, 1)).Message, StringComparison.Ordinal);
        Assert.Equal([16 * 4, 8 * 4], Calibration.Plan(ReproductionSpec.All, Calibration.DefaultConstants, 4, 200).SearchScales);
    }

    [Fact]
    public void CrossCheckLossCountsFactorsOfTwoForPositiveTargetsAndHalfWidthsForPoints()
    {
        CrossCheckRun run = new("truncate", "gorman-1node", "sparse-truncate", "vanilla", 64);
        CrossCheck c = CrossCheck.Run(
        [
            new("in", "ns", 1, 1, 1e9, "", "t", ["truncate"], r => CrossCheck.TruncateNsPerPage(r("truncate"))),
            new("4x below", "ns", 1, 1, 2, "", "t", ["truncate"], r => 0.25),
            new("8x above", "ns", 1, 1, 2, "", "t", ["truncate"], r => 16),
            new("zero", "%", 1, 1, 2, "", "t", ["truncate"], r => 0),
            new("points", "%", -99, -100, -98, "", "t", ["truncate"], r => -96),
        ], [run], seed: 1, jobs: 1);
        Assert.Equal([true, false, false, false, false], c.Rows.Select(r => r.Within));
        // 2^2 (a quarter of the minimum) + 3^2 (eight times the maximum) + 10^2 (0: 1/1024 of the minimum) + 2^2 (2 points past, half-width 1).
        Assert.Equal(4 + 9 + 100 + 4, Calibration.Loss(c), 9);
    }

    [Fact]
    public void ASearchWithCrossChecksScoresThemAtEveryPointAndReportsThemAtTheBest()
    {
        CrossCheckRun run = new("truncate", "gorman-1node", "sparse-truncate", "vanilla", 64);
        // The rm's system time per page falls with PageFreeNs: a target below today's value pulls it down.
        RunResult atDefaults = Runner.Run(run.Config(1));
        double now = CrossCheck.TruncateNsPerPage(atDefaults);
        CrossCheckSpec lower = new("truncate per page", "ns", now / 2, now / 4, now * 0.9, "", "test", ["truncate"], r => CrossCheck.TruncateNsPerPage(r("truncate")));
        // A reproduction PageFreeNs cannot move (a check on another constant, always within): the cross-check alone decides.
        var neutral = new ReproductionSpec("tiny", "test", 64, ["vanilla"], [ConstantIn("FaultEntryNs", 0, 1e9)]);
        Calibration c = Calibration.Run([neutral], seed: 1, ["PageFreeNs"], searchScaleFactor: 1, maxEvaluations: 3, jobs: 2,
            startFrom: CalibrationStart.Defaults, crossChecks: [lower], crossCheckRuns: [run]);
        Assert.NotNull(c.FinalCrossCheck);
        int reproduceChecks = neutral.Checks.Count;
        Assert.All(c.Steps, s => Assert.Equal(reproduceChecks + 1, s.Checks)); // the cross-check counts among the checks
        Assert.All(c.Steps.Where(s => s.Within < s.Checks), s => Assert.Contains("crosscheck: truncate per page", s.Outside));
        // Every step's loss is the reproduction's plus the cross-check's; the kept point is the one reported.
        CrossCheck best = CrossCheck.Run([lower], [run], 1, 1, m => m.With("PageFreeNs", c.Best["PageFreeNs"]));
        Assert.Equal(best.Rows[0].Simulated, c.FinalCrossCheck!.Rows[0].Simulated, 9);
        Assert.True(c.Best["PageFreeNs"] < CostModel.Xeon2015.PageFreeNs, $"PageFreeNs {c.Best["PageFreeNs"]}: the cross-check pulls it down");
        Assert.Contains("shootdown crosscheck --seed 1 --cost page_free_ns=", string.Join(";", c.ReplayCommands), StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(c.ToJson());
        Assert.Equal(1, doc.RootElement.GetProperty("crosschecks").GetProperty("checks_total").GetInt32());
        Assert.Equal(Calibration.Loss(c.FinalCrossCheck), doc.RootElement.GetProperty("crosscheck_loss").GetDouble(), 9);
        // Without cross-checks nothing of theirs is reported.
        Calibration plain = Calibration.Run([TinySpec], seed: 1, ["PageFreeNs"], searchScaleFactor: 4, maxEvaluations: 1, jobs: 1);
        Assert.Null(plain.FinalCrossCheck);
        Assert.DoesNotContain("crosscheck", string.Join(";", plain.ReplayCommands), StringComparison.Ordinal);
    }
}
