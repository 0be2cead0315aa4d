using System.Globalization;
using System.Text;

namespace Shootdown.Reports;

/// <summary>A published figure of the seed's 4-node experiment and how close a simulation must come.</summary>
public sealed record PublishedFigure(string Policy, string Metric, double Value, double Tolerance, string Source, bool ScalesWithSize);

/// <summary>
/// `shootdown reproduce`: the seed's comparison on the 4-node machine (lru-file-mmap-read) beside
/// the published figures ([RFC 0/4] and [RFC 2/4], linux-mm, 15 Apr 2015; README, "Sources"). Time and CPU seconds scale with the
/// machine's size, so at --scale 1/N they are multiplied by N before comparing; rates do not scale.
/// </summary>
public sealed class Reproduction
{
    public static readonly string[] Policies = ["vanilla", "rfc-pfn32", "rfc-pfn-page", "linux-4.3"];

    /// <summary>The seed's figures ("[RFC PATCH 0/4] TLB flush multiple pages with a single IPI" and patches 2 and 3, Mel Gorman, linux-mm, 15 Apr 2015); tolerances are the project's own targets.</summary>
    public static readonly PublishedFigure[] Published =
    [
        new("vanilla", "elapsed_s", 161.08, 0.25, "seed, 4.0 vanilla", true),
        new("vanilla", "user_s", 571.38, 0.10, "seed, 4.0 vanilla", true),
        new("vanilla", "system_s", 5990.12, 0.25, "seed, 4.0 vanilla", true),
        new("vanilla", "interrupts_per_s", 900_000, 0.25, "seed cover letter", false),
        new("rfc-pfn32", "elapsed_s", 117.73, 0.25, "seed, RFC batch of 32 PFNs", true),
        new("rfc-pfn32", "user_s", 602.93, 0.10, "seed, RFC batch of 32 PFNs", true),
        new("rfc-pfn32", "system_s", 4072.56, 0.25, "seed, RFC batch of 32 PFNs", true),
        new("rfc-pfn32", "interrupts_per_s", 180_000, 0.25, "seed, patch 2 changelog", false),
        new("rfc-pfn-page", "interrupts_per_s", 60_000, 0.25, "seed cover letter (full series)", false),
    ];

    public Reproduction(Comparison comparison)
    {
        Comparison = comparison;
    }

    public Comparison Comparison { get; }

    public int Scale => Comparison.Baseline.Runs[0].Config.ScaleDivisor;

    private PolicyRuns Of(string policy) => Comparison.Results.First(r => r.Policy == policy);

    private static double Get(RunResult r, string metric) => metric switch
    {
        "elapsed_s" => r.ElapsedS,
        "user_s" => r.UserS,
        "system_s" => r.SystemS,
        "interrupts_per_s" => r.InterruptsPerS,
        _ => throw new ArgumentException(metric),
    };

    public sealed record Row(string Check, double Published, double Simulated, double DeviationPct, bool Within, string Target);

    /// <summary>Every check: the published figures, and the project's relative targets.</summary>
    public IReadOnlyList<Row> Rows()
    {
        var rows = new List<Row>();
        foreach (PublishedFigure f in Published)
        {
            double sim = Of(f.Policy).Runs.Average(r => Get(r, f.Metric)) * (f.ScalesWithSize ? Scale : 1);
            double dev = (sim - f.Value) / f.Value * 100;
            rows.Add(new Row($"{f.Policy} {f.Metric}", f.Value, sim, dev, Math.Abs(dev) <= f.Tolerance * 100, $"±{f.Tolerance * 100:0}%"));
        }
        double Mean(string p, Func<RunResult, double> g) => Of(p).Runs.Average(g);
        double gainElapsed = (1 - Mean("rfc-pfn32", r => r.ElapsedS) / Mean("vanilla", r => r.ElapsedS)) * 100;
        rows.Add(new Row("rfc-pfn32 faster than vanilla (%)", 26.9, gainElapsed, gainElapsed - 26.9, gainElapsed is >= 20 and <= 33, "20..33"));
        double gainSys = (1 - Mean("rfc-pfn32", r => r.SystemS) / Mean("vanilla", r => r.SystemS)) * 100;
        rows.Add(new Row("rfc-pfn32 system time lower (%)", 32.0, gainSys, gainSys - 32.0, gainSys is >= 25 and <= 40, "25..40"));
        double userDiff = (Mean("rfc-pfn32", r => r.UserS) / Mean("vanilla", r => r.UserS) - 1) * 100;
        rows.Add(new Row("rfc-pfn32 user time vs vanilla (%)", 5.5, userDiff, userDiff - 5.5, Math.Abs(userDiff) <= 10, "±10"));
        double l43 = (Mean("linux-4.3", r => r.ElapsedS) / Mean("rfc-pfn32", r => r.ElapsedS) - 1) * 100;
        rows.Add(new Row("linux-4.3 elapsed vs rfc-pfn32 (%)", 0, l43, l43, Math.Abs(l43) <= 5, "±5"));
        return rows;
    }

    /// <summary>Whether every check is within its tolerance (`reproduce` exits 5 otherwise).</summary>
    public bool AllWithin => Rows().All(r => r.Within);

    public string ToText()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Seed's comparison, simulated at scale 1/{Scale} (time and CPU seconds x{Scale}), against the published figures:");
        sb.AppendLine();
        sb.AppendLine($"{"check",-38}{"published",14}{"simulated",14}{"deviation",12}{"target",10}  match");
        foreach (Row r in Rows())
        {
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{r.Check,-38}{r.Published,14:0.##}{r.Simulated,14:0.##}{r.DeviationPct,11:+0.0;-0.0}%{r.Target,10}  {(r.Within ? "yes" : "NO")}");
        }
        int ok = Rows().Count(r => r.Within);
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{ok} of {Rows().Count} checks within tolerance.");
        return sb.ToString();
    }
}
