using System.Text.Json;
using System.Text.RegularExpressions;
using Shootdown.Cli;
using Shootdown.Hardware;
using Shootdown.Reports;

namespace Shootdown.Tests;

/// <summary>
/// `reproduce`'s specs and rows. The simulated figures are not asserted (the cost model is being
/// refitted); the checks' names, published figures, ranges, deviations and the exit status are.
/// </summary>
[Collection("console")]
public class ReproductionTests
{
    [Fact]
    public void TheFourNodeSpecKeepsItsThirteenChecks()
    {
        ReproductionSpec s = ReproductionSpec.Gorman4Node;
        Assert.Equal(("gorman-4node", 16), (s.Machine, s.DefaultScale));
        Assert.Equal(Reproduction.Policies, s.Policies);
        Assert.Equal(
        [
            "vanilla elapsed_s", "vanilla user_s", "vanilla benchmark_system_s", "vanilla interrupts_per_s",
            "rfc-pfn32 elapsed_s", "rfc-pfn32 user_s", "rfc-pfn32 benchmark_system_s", "rfc-pfn32 interrupts_per_s",
            "rfc-pfn-page interrupts_per_s", "rfc-pfn32 faster than vanilla (%)", "rfc-pfn32 system time lower (%)",
            "rfc-pfn32 user time vs vanilla (%)", "linux-4.3 elapsed vs rfc-pfn32 (%)",
        ], s.Checks.Select(c => c.Name));
        Assert.Equal(["±25%", "±10%", "±25%", "±25%", "±25%", "±10%", "±25%", "±25%", "±25%", "20..33", "25..40", "±10", "±5"], s.Checks.Select(c => c.Target));
        Assert.Equal([161.08, 571.38, 5990.12, 900_000, 117.73, 602.93, 4072.56, 180_000, 60_000, 26.9, 32, 5.5, 0], s.Checks.Select(c => c.Published));
        ReproductionCheck elapsed = s.Checks[0];
        Assert.True(elapsed.Within(161.08 * 1.2499));
        Assert.False(elapsed.Within(161.08 * 1.2501));
        Assert.Equal(-10, elapsed.Deviation(161.08 * 0.9), 9);
        ReproductionCheck user = s.Checks[11];
        Assert.True(user.Within(-10) && user.Within(10) && !user.Within(10.01));
        Assert.Equal(-5.5, user.Deviation(0), 9); // a percentage deviates in points
    }

    [Fact]
    public void TheOneNodeSpecChecksRangesBesideEachPublishedFigure()
    {
        ReproductionSpec s = ReproductionSpec.Gorman1Node;
        Assert.Same(s, ReproductionSpec.For("gorman-1node"));
        Assert.Null(ReproductionSpec.For("tiny"));
        Assert.Equal(("gorman-1node", 8), (s.Machine, s.DefaultScale));
        Assert.Equal(["vanilla", "rfc-pfn32", "linux-4.3"], s.Policies);
        Assert.Equal(
        [
            ("vanilla elapsed_s", 22.50, "18..32"), ("rfc-pfn32 elapsed_s", 19.60, "15..28"), ("vanilla benchmark_system_s", 109.15, "80..140"),
            ("rfc-pfn32 benchmark_system_s", 83.78, "60..110"), ("vanilla user_s", 59.14, "45..75"),
            ("vanilla interrupts_per_s", 500_000, "375K..625K"), ("rfc-pfn32 interrupts_per_s", 45_000, "30K..70K"),
            ("rfc-pfn32 faster than vanilla (%)", 12.9, "8..25"), ("linux-4.3 faster than vanilla (%)", 19.0, "10..28"),
        ], s.Checks.Select(c => (c.Name, c.Published, c.Target)));
        Assert.All(s.Checks, c => Assert.NotEqual("", c.Source));
        Assert.Contains("27.32", s.Checks[0].Source, StringComparison.Ordinal);
        Assert.Contains("25.43", s.Checks[0].Source, StringComparison.Ordinal);
        ReproductionCheck elapsed = s.Checks[0];
        Assert.Null(elapsed.Tolerance);
        Assert.True(elapsed.Within(18) && elapsed.Within(32) && elapsed.Within(25));
        Assert.False(elapsed.Within(17.99) || elapsed.Within(32.01));
        Assert.Equal(100, elapsed.Deviation(45), 9);
        ReproductionCheck gain = s.Checks[^1];
        Assert.True(gain.IsPercentage);
        Assert.Equal(1, gain.Deviation(20), 9);
        Assert.False(gain.Within(9.99));
    }

    [Fact]
    public void OneNodeRowsFollowTheirChecksOnASmallRun()
    {
        ReproductionSpec spec = ReproductionSpec.Gorman1Node;
        Comparison c = Comparison.Run(RunConfig.Create(machine: "tiny", scaleDivisor: 4), spec.Policies, repeat: 1);
        var rep = new Reproduction(spec, c);
        var rows = rep.Rows();
        Assert.Equal(spec.Checks.Count, rows.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            ReproductionCheck check = spec.Checks[i];
            Assert.Equal(check.Name, rows[i].Check);
            Assert.Equal(check.Within(rows[i].Simulated), rows[i].Within);
            Assert.Equal(rows[i].Simulated >= check.Min && rows[i].Simulated <= check.Max, rows[i].Within);
            Assert.Equal(check.Source, rows[i].Source);
        }
        RunResult vanilla = c.Results[0].Runs[0];
        Assert.Equal(vanilla.ElapsedS * 4, rows[0].Simulated, 9); // times scale with the divisor
        Assert.Equal(vanilla.InterruptsPerS, rows[5].Simulated, 9); // rates do not
        Assert.Equal((1 - c.Results[1].Runs[0].ElapsedS / vanilla.ElapsedS) * 100, rows[7].Simulated, 9);
        Assert.Equal(rep.AllWithin, rows.All(r => r.Within));
        string text = rep.ToText();
        Assert.Contains("18..32", text, StringComparison.Ordinal);
        Assert.Contains("RFC 2/4 22.50 (run with 4 CPUs, inferred); v5 2/3 27.32; v6 2/4 25.43", text, StringComparison.Ordinal);
        Assert.Contains($"of {rows.Count} checks within tolerance", text, StringComparison.Ordinal);
        // One seed: no spread, nothing added to the table or the JSON.
        Assert.Equal(1, rep.Seeds);
        Assert.Empty(rep.PerSeed());
        Assert.All(rows, r => Assert.True(r.StdDev is null && r.SeedsWithin is null));
        Assert.DoesNotContain("seeds_within", rep.ToJsonNode().ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain("  seeds  ", text, StringComparison.Ordinal);
    }

    [Fact]
    public void OverSeveralSeedsEachCheckSaysHowItsFigureAndVerdictVary()
    {
        ReproductionSpec spec = ReproductionSpec.Gorman1Node;
        RunConfig cfg = RunConfig.Create(machine: "tiny", scaleDivisor: 4);
        var rep = new Reproduction(spec, Comparison.Run(cfg, spec.Policies, repeat: 3));
        var alone = Enumerable.Range(0, 3).Select(k => new Reproduction(spec, Comparison.Run(cfg with { Seed = cfg.Seed + (ulong)k }, spec.Policies, repeat: 1))).ToArray();
        Assert.Equal(3, rep.Seeds);
        Assert.Equal(3, rep.PerSeed().Count);
        var rows = rep.Rows();
        for (int i = 0; i < rows.Count; i++)
        {
            double[] xs = alone.Select(a => a.Rows()[i].Simulated).ToArray();
            Assert.Equal(xs, rep.PerSeed().Select(p => p.Rows()[i].Simulated)); // each seed's own reproduction
            double m = xs.Average();
            Assert.Equal(Math.Sqrt(xs.Sum(x => (x - m) * (x - m)) / 2), rows[i].StdDev!.Value, 9);
            Assert.Equal(alone.Count(a => a.Rows()[i].Within), rows[i].SeedsWithin);
        }
        Assert.Contains(rows, r => r.StdDev > 0);
        var json = rep.ToJsonNode();
        Assert.Equal(3, (int)json["seeds"]!);
        Assert.Equal(rows.Count(r => r.SeedsWithin == 3), (int)json["checks_within_every_seed"]!);
        var check0 = json["checks"]![0]!;
        Assert.Equal(rows[0].SeedsWithin, (int)check0["seeds_within"]!);
        Assert.Equal(rows[0].StdDev!.Value, (double)check0["stddev"]!, 12);
        string text = rep.ToText();
        Assert.Contains("  match          sd  seeds  source", text, StringComparison.Ordinal);
        Assert.Contains($"  {rows[0].SeedsWithin}/3", text, StringComparison.Ordinal);
        Assert.Contains("on the means of 3 seeds", text, StringComparison.Ordinal);
    }

    [Fact]
    public void ReproduceRunsBothMachinesAndExits5WhenAnyCheckOfEitherIsOut()
    {
        var (code, stdout, stderr) = CliTests.Cli("reproduce", "--scale", "1/1024", "--format", "json");
        Assert.True(code is 0 or ShootdownCli.ExitOutOfTolerance, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var reps = doc.RootElement.GetProperty("reproductions").EnumerateArray().ToArray();
        Assert.Equal(["gorman-4node", "gorman-1node"], reps.Select(r => r.GetProperty("machine").GetString()));
        Assert.Equal([13, 9], reps.Select(r => r.GetProperty("checks").GetArrayLength()));
        Assert.All(reps, r => Assert.Equal(1024, r.GetProperty("scale_divisor").GetInt32()));
        Assert.Equal(["vanilla", "rfc-pfn32", "linux-4.3"], reps[1].GetProperty("results").EnumerateArray().Select(e => e.GetProperty("policy").GetString()));
        bool all = reps.All(r => r.GetProperty("checks").EnumerateArray().All(c => c.GetProperty("within").GetBoolean()));
        Assert.Equal(all, doc.RootElement.GetProperty("all_within").GetBoolean());
        Assert.Equal(all ? ShootdownCli.ExitOk : ShootdownCli.ExitOutOfTolerance, code);
        Assert.Equal("18..32", reps[1].GetProperty("checks")[0].GetProperty("target").GetString());
    }

    [Fact]
    public void ReproduceOneMachineTableAndCsv()
    {
        var (code, stdout, _) = CliTests.Cli("reproduce", "--machine", "gorman-1node", "--scale", "1/512");
        var m = Regex.Matches(stdout, @"(\d+) of (\d+) checks within tolerance");
        Assert.Single(m);
        Assert.Equal("9", m[0].Groups[2].Value);
        Assert.Equal(m[0].Groups[1].Value == "9" ? 0 : ShootdownCli.ExitOutOfTolerance, code);
        Assert.Contains("gorman-1node: 1x8 CPUs", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("gorman-4node", stdout, StringComparison.Ordinal);

        (_, stdout, _) = CliTests.Cli("reproduce", "--machine", "gorman-1node", "--scale", "1/512", "--format", "csv");
        string[] lines = stdout.TrimEnd('\n').Split('\n');
        Assert.Equal("machine,metric,policy,mean,stddev,delta_pct,runs", lines[0]);
        Assert.All(lines.Skip(1), l => Assert.StartsWith("gorman-1node,", l, StringComparison.Ordinal));
        Assert.Contains("gorman-1node,elapsed_s,linux-4.3,", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void ReproduceWithoutMemcgSaysSoAndRecordsItInEveryRunsConfig()
    {
        var (_, stdout, _) = CliTests.Cli("reproduce", "--machine", "gorman-1node", "--scale", "1/512", "--memcg", "off");
        Assert.Contains("kernel without memory cgroups (--memcg off)", stdout, StringComparison.Ordinal);
        (_, stdout, _) = CliTests.Cli("reproduce", "--machine", "gorman-1node", "--scale", "1/512", "--memcg", "off", "--format", "json");
        using var off = JsonDocument.Parse(stdout);
        var results = off.RootElement.GetProperty("reproductions")[0].GetProperty("results");
        Assert.Equal(3, results.GetArrayLength());
        Assert.All(results.EnumerateArray(), r => Assert.False(r.GetProperty("config").GetProperty("policy").GetProperty("memcg").GetBoolean()));
        (_, stdout, _) = CliTests.Cli("reproduce", "--machine", "gorman-1node", "--scale", "1/512");
        Assert.DoesNotContain("memory cgroups", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("reproduce has no reproduction of machine 'tiny'; allowed: gorman-4node, gorman-1node", "reproduce", "--machine", "tiny")]
    [InlineData("--full runs the machine at full size, --scale 1/8 asks for less", "reproduce", "--machine", "gorman-1node", "--full", "--scale", "1/8")]
    [InlineData("malformed --scale", "reproduce", "--scale", "1/x")]
    public void ReproduceRefusesBadInput(string expected, params string[] args) => CliTests.AssertRefused(expected, args);
}
