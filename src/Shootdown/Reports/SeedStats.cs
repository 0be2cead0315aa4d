namespace Shootdown.Reports;

/// <summary>What the reports say about runs repeated over seeds: the sample standard deviation and how the seeds are named.</summary>
public static class SeedStats
{
    /// <summary>Sample standard deviation (n − 1 in the denominator, as mmtests' calc_stddev); 0 for fewer than two values.</summary>
    public static double SampleStdDev(IReadOnlyCollection<double> xs)
    {
        if (xs.Count < 2)
        {
            return 0;
        }
        double mean = xs.Average();
        return Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Count - 1));
    }

    /// <summary>"seed 1" for one run, "seeds 1..3 (means)" for <paramref name="repeat"/> seeds from <paramref name="seed"/>.</summary>
    public static string Describe(ulong seed, int repeat) =>
        repeat == 1 ? $"seed {seed}" : $"seeds {seed}..{seed + (ulong)repeat - 1} (means)";
}
