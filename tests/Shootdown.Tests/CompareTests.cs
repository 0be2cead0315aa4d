using System.Text.Json;
using Shootdown.Hardware;
using Shootdown.Reports;

namespace Shootdown.Tests;

public class CompareTests
{
    private static RunConfig Tiny() => RunConfig.Create(machine: "tiny", scaleDivisor: 2);

    [Fact]
    public void ParallelRunsEqualSequentialRuns()
    {
        string[] policies = ["vanilla", "linux-4.3"];
        Comparison seq = Comparison.Run(Tiny(), policies, repeat: 2, parallelism: 1);
        Comparison par = Comparison.Run(Tiny(), policies, repeat: 2, parallelism: 4);
        Assert.Equal(Strip(seq), Strip(par));
    }

    private static string Strip(Comparison c) =>
        string.Join("\n", c.Results.SelectMany(r => r.Runs).Select(RunTests.Normalize));

    [Fact]
    public void JsonHasBaselineAndOneResultPerPolicy()
    {
        Comparison c = Comparison.Run(Tiny(), ["vanilla", "rfc-pfn32"], repeat: 2);
        using var doc = JsonDocument.Parse(c.ToJson());
        var root = doc.RootElement;
        Assert.Equal("vanilla", root.GetProperty("baseline").GetProperty("policy").GetString());
        var results = root.GetProperty("results");
        Assert.Equal(2, results.GetArrayLength());
        Assert.Equal("rfc-pfn32", results[1].GetProperty("policy").GetString());
        Assert.True(results[1].TryGetProperty("elapsed_s", out _));
        Assert.True(results[1].TryGetProperty("vmstat", out _));
        Assert.Equal(2, results[1].GetProperty("seeds").GetArrayLength());
        double mean = results[1].GetProperty("mean").GetProperty("elapsed_s").GetDouble();
        Assert.Equal(c.Results[1].Runs.Average(r => r.ElapsedS), mean, 12);
        Assert.True(results[1].GetProperty("stddev").GetProperty("elapsed_s").GetDouble() >= 0);
        // The median task's exit beside the last one's (elapsed): the run's tail, per policy.
        double median = results[1].GetProperty("mean").GetProperty("median_exit_s").GetDouble();
        Assert.Equal(c.Results[1].Runs.Average(r => r.TaskExits.MedianS), median, 12);
        Assert.True(median > 0 && median <= mean, $"median exit {median}, elapsed {mean}");
    }

    [Fact]
    public void TextRowsShowValueAndDeltaAgainstTheBaseline()
    {
        Comparison c = Comparison.Run(Tiny(), ["vanilla", "linux-4.3"], repeat: 1);
        string text = c.ToText();
        string row = text.Split('\n').First(l => l.StartsWith("TLB IPIs ", StringComparison.Ordinal));
        double v = c.Results[0].Runs[0].TlbIpis, b = c.Results[1].Runs[0].TlbIpis;
        string delta = Comparison.DeltaPct(b, v).ToString("+0.00;-0.00;0.00", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains("(   0.00%)", row, StringComparison.Ordinal);
        Assert.Contains(delta + "%)", row, StringComparison.Ordinal);
        string csv = c.ToCsv();
        Assert.StartsWith("metric,policy,mean,stddev,delta_pct,runs\n", csv, StringComparison.Ordinal);
        Assert.Equal(c.ShownMetrics.Count * 2 + 1, csv.TrimEnd('\n').Split('\n').Length);
    }

    [Fact]
    public void ReclaimBatchRowsComeFromEachRunsBatchFlushesAndReadZeroForVanilla()
    {
        Comparison c = Comparison.Run(Tiny(), ["vanilla", "rfc-pfn32"], repeat: 1);
        using var doc = JsonDocument.Parse(c.ToJson());
        JsonElement vanilla = doc.RootElement.GetProperty("results")[0].GetProperty("mean");
        JsonElement rfc = doc.RootElement.GetProperty("results")[1].GetProperty("mean");
        Assert.Equal(0, vanilla.GetProperty("batch_flushes_reclaim").GetDouble());
        Assert.Equal(0, vanilla.GetProperty("batch_other_cpus_per_flush_reclaim").GetDouble());
        Observe.BatchFlushReport b = c.Results[1].Runs[0].TlbBatchFlushes!["reclaim"];
        Assert.Equal(b.Flushes, rfc.GetProperty("batch_flushes_reclaim").GetDouble());
        Assert.Equal(b.PagesPerFlush, rfc.GetProperty("batch_pages_per_flush_reclaim").GetDouble(), 12);
        Assert.Equal(b.RemoteCpusPerFlush, rfc.GetProperty("batch_other_cpus_per_flush_reclaim").GetDouble(), 12);
        Assert.True(b.RemoteCpusPerFlush >= 1, $"{b.RemoteCpusPerFlush}");
    }

    [Theory]
    [InlineData("vanilla,,rfc-pfn32", "malformed --policies")]
    [InlineData("vanilla,bogus", "unknown policy 'bogus'")]
    [InlineData("vanilla,vanilla", "appears twice")]
    public void BadPolicyListsAreRejected(string list, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Comparison.ParsePolicyList(list));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RepeatZeroIsRejected()
    {
        var e = Assert.Throws<ConfigException>(() => Comparison.Run(Tiny(), ["vanilla"], 0));
        Assert.Contains("--repeat", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReproductionChecksEveryPublishedFigure()
    {
        Comparison c = Comparison.Run(RunConfig.Create(machine: "tiny"), Reproduction.Policies, repeat: 1);
        var rep = new Reproduction(c);
        var rows = rep.Rows();
        Assert.Equal(Reproduction.Published.Length + 4, rows.Count);
        var elapsed = rows.First(r => r.Check == "vanilla elapsed_s");
        Assert.Equal(161.08, elapsed.Published);
        Assert.Equal(c.Results[0].Runs[0].ElapsedS * c.Results[0].Runs[0].Config.ScaleDivisor, elapsed.Simulated, 9);
        Assert.Contains("checks within tolerance", rep.ToText(), StringComparison.Ordinal);
    }
}
