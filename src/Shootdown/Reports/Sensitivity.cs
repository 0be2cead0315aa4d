using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Shootdown.Hardware;

namespace Shootdown.Reports;

/// <summary>
/// One constant of the cost model perturbed: its baseline value and the values below and above.
/// A side is null when it cannot run (the value breaks a constraint between constants); its note
/// says why. A side equal to the baseline (rounding, or clamped to the constant's range) is not run
/// again: its figures are the baseline's.
/// </summary>
public sealed record Perturbation(string Constant, long Baseline, long? Low, long? High, string? LowNote, string? HighNote)
{
    public string Key => CostModel.SnakeCase(Constant);
}

/// <summary>
/// How one figure moved with one constant: the figure at the low and high values and its change
/// (null: not run). <see cref="NoiseBand"/> is the figure's noise band when the runs were repeated
/// over seeds (null for one seed).
/// </summary>
public sealed record FigureChange(Perturbation Perturbation, double? FigureLow, double? FigureHigh, double? ChangeLow, double? ChangeHigh, double? NoiseBand = null)
{
    public string Constant => Perturbation.Constant;

    /// <summary>The larger absolute change of the two sides (what the tornado sorts by).</summary>
    public double Swing => Math.Max(Math.Abs(ChangeLow ?? 0), Math.Abs(ChangeHigh ?? 0));

    /// <summary>Whether both sides moved the figure by less than its noise band (null for one seed, where the noise is not known).</summary>
    public bool? WithinNoise => NoiseBand is { } n ? Swing < n : null;
}

/// <summary>
/// One figure of the reproduction, its baseline value and every constant's effect on it, the
/// largest swing first. With the runs repeated over N seeds the figures are means over the seeds,
/// <see cref="BaselineStdDev"/> is the sample standard deviation of the baseline's figure from seed
/// to seed, and <see cref="NoiseBand"/> (in the change's unit) is the 95% band of the difference of
/// two such means with that standard deviation estimated from the N seeds, t·sd·√(2/N) with t
/// Student's 97.5% quantile for N − 1 degrees of freedom (<see cref="Sensitivity.StudentT975"/>):
/// a change smaller than that is within what another draw of seeds could give with no change at
/// all (null for one seed).
/// </summary>
public sealed record FigureSensitivity(string Figure, bool IsPercentage, double Baseline, IReadOnlyList<FigureChange> Changes, double? BaselineStdDev = null, double? NoiseBand = null)
{
    /// <summary>"%" for figures whose changes are in percent of the baseline, "pt" for figures that are percentages (changes in points).</summary>
    public string ChangeUnit => IsPercentage ? "pt" : "%";
}

/// <summary>
/// `shootdown sensitivity`: the whole reproduction of a machine rerun with each cost constant at
/// (1 − delta) and (1 + delta) times its value (integer constants rounded, kept within
/// <see cref="CostModel.Range"/>); for each reproduced figure, how far each constant moves it,
/// sorted by the larger of the two movements (a tornado). With <c>repeat</c> N &gt; 1 every
/// configuration runs with seeds seed..seed+N−1 and the figures are means over them, each with the
/// noise band the seeds give (<see cref="FigureSensitivity.NoiseBand"/>): a single seed is one draw
/// of a chaotic run, whose figures can move by more than a constant does (README, "Sensitivity").
/// Runs are deterministic: the same configuration gives the same report, whatever the parallelism.
/// </summary>
public sealed class Sensitivity
{
    private Sensitivity(RunConfig baseConfig, ReproductionSpec spec, double delta, int repeat, IReadOnlyList<Perturbation> perturbations,
        IReadOnlyList<(string Constant, string Reason)> skipped, Reproduction baseline, IReadOnlyList<FigureSensitivity> figures)
    {
        BaseConfig = baseConfig;
        Spec = spec;
        Delta = delta;
        Repeat = repeat;
        Perturbations = perturbations;
        Skipped = skipped;
        Baseline = baseline;
        Figures = figures;
    }

    /// <summary>The configuration of the baseline runs (its policy is the spec's first; the others differ only in policy).</summary>
    public RunConfig BaseConfig { get; }

    public ReproductionSpec Spec { get; }

    public double Delta { get; }

    /// <summary>Seeds per configuration: seed..seed+Repeat−1 (1: the figures are one run's).</summary>
    public int Repeat { get; }

    public IReadOnlyList<Perturbation> Perturbations { get; }

    /// <summary>Constants not perturbed, and why (0 at baseline: ±delta of 0 is 0).</summary>
    public IReadOnlyList<(string Constant, string Reason)> Skipped { get; }

    public Reproduction Baseline { get; }

    public IReadOnlyList<FigureSensitivity> Figures { get; }

    /// <summary>The runs <see cref="Run"/> makes: one per policy and seed for the baseline and for each distinct perturbed value.</summary>
    public static int CountRuns(ReproductionSpec spec, IReadOnlyList<Perturbation> perturbations, int repeat = 1) =>
        repeat * spec.Policies.Count * (1 + perturbations.SelectMany(p => new[] { p.Low, p.High }.Where(v => v is { } x && x != p.Baseline).Select(v => (p.Constant, v))).Distinct().Count());

    private static long Value(CostModel costs, string name) => costs.Get(name);

    /// <summary>The perturbed values of each constant (skipping those that are 0 at baseline); throws <see cref="ConfigException"/> for unknown names.</summary>
    public static (IReadOnlyList<Perturbation> Perturbations, IReadOnlyList<(string Constant, string Reason)> Skipped) Plan(
        CostModel costs, IReadOnlyList<string> constants, double delta)
    {
        if (!(delta > 0 && delta < 1))
        {
            throw new ConfigException($"--delta must be a number between 0 and 1 (exclusive), got {delta.ToString(CultureInfo.InvariantCulture)}");
        }
        var list = new List<Perturbation>();
        var skipped = new List<(string, string)>();
        foreach (string c in constants)
        {
            string name = CostModel.Canonical(c) ?? throw CostModel.Unknown(c);
            long v = Value(costs, name);
            if (v == 0)
            {
                skipped.Add((name, $"0 at baseline (±{delta * 100:0.##}% of 0 is 0)"));
                continue;
            }
            var (low, lowNote) = Side(costs, name, v, 1 - delta);
            var (high, highNote) = Side(costs, name, v, 1 + delta);
            list.Add(new Perturbation(name, v, low, high, lowNote, highNote));
        }
        return (list, skipped);
    }

    private static (long? Value, string? Note) Side(CostModel costs, string name, long v, double factor)
    {
        var (min, max) = CostModel.Range(name);
        double exact = Math.Round(v * factor, MidpointRounding.AwayFromZero);
        long value = (long)Math.Clamp(exact, min, max);
        string? note = value != exact ? $"clamped to {min}..{max}" : value == v ? "rounds to the baseline" : null;
        try
        {
            costs.With(name, value).Validate();
        }
        catch (ConfigException e)
        {
            return (null, $"{value}: {e.Message}");
        }
        return (value, note);
    }

    /// <summary>
    /// Runs the baseline reproduction and one per perturbed value, each over <paramref name="repeat"/>
    /// seeds (<paramref name="jobs"/> runs at once), and computes every figure's changes.
    /// <paramref name="progress"/> gets (done, total) runs.
    /// </summary>
    public static Sensitivity Run(RunConfig baseConfig, ReproductionSpec spec, IReadOnlyList<string> constants, double delta, int jobs, Action<int, int>? progress = null, int repeat = 1)
    {
        if (repeat < 1)
        {
            throw new ConfigException($"--repeat must be at least 1, got {repeat}");
        }
        var (perturbations, skipped) = Plan(baseConfig.Costs, constants, delta);
        var sets = new List<(RunConfig, IReadOnlyList<string>)> { (baseConfig with { PolicyName = spec.Policies[0] }, spec.Policies) };
        var index = new Dictionary<(string, long), int>();
        foreach (Perturbation p in perturbations)
        {
            foreach (long? side in new[] { p.Low, p.High })
            {
                if (side is { } v && v != p.Baseline && !index.ContainsKey((p.Constant, v)))
                {
                    index[(p.Constant, v)] = sets.Count;
                    sets.Add((baseConfig with { PolicyName = spec.Policies[0], Costs = baseConfig.Costs.With(p.Constant, v) }, spec.Policies));
                }
            }
        }
        IReadOnlyList<Comparison> runs = Comparison.RunMany(sets, repeat: repeat, parallelism: jobs, progress: progress);
        var reps = runs.Select(c => new Reproduction(spec, c)).ToArray();
        Reproduction baseline = reps[0];
        var figures = new List<FigureSensitivity>();
        for (int i = 0; i < spec.Checks.Count; i++)
        {
            ReproductionCheck check = spec.Checks[i];
            double b = baseline.Rows()[i].Simulated;
            // The baseline figure's standard deviation from seed to seed (null for one seed).
            double? sd = baseline.Rows()[i].StdDev, band = null;
            if (sd is { } s)
            {
                // The 95% band of the difference of two means over `repeat` seeds, sd estimated from them.
                double diff = StudentT975(repeat - 1) * s * Math.Sqrt(2.0 / repeat);
                band = check.IsPercentage ? diff : b == 0 ? null : diff / Math.Abs(b) * 100;
            }
            double? FigureAt(Perturbation p, long? side) =>
                side is not { } v ? null : v == p.Baseline ? b : reps[index[(p.Constant, v)]].Rows()[i].Simulated;
            double? Change(double? f) =>
                f is not { } x ? null : check.IsPercentage ? x - b : x == b ? 0 : b == 0 ? null : (x - b) / Math.Abs(b) * 100;
            var changes = perturbations.Select(p =>
            {
                double? lo = FigureAt(p, p.Low), hi = FigureAt(p, p.High);
                return new FigureChange(p, lo, hi, Change(lo), Change(hi), band);
            }).OrderByDescending(c => c.Swing).ThenBy(c => c.Constant, StringComparer.Ordinal).ToArray();
            figures.Add(new FigureSensitivity(check.Name, check.IsPercentage, b, changes, sd, band));
        }
        return new Sensitivity(baseConfig with { PolicyName = spec.Policies[0] }, spec, delta, repeat, perturbations, skipped, baseline, figures);
    }

    private static readonly double[] T975 =
    [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];

    /// <summary>
    /// Student's t distribution's 97.5% quantile for <paramref name="df"/> degrees of freedom (a
    /// two-sided 95% band): the table's values to three decimals for 1–30, then those of 40, 60 and
    /// 120 degrees of freedom for the ranges up to them, and the normal's 1.960 beyond.
    /// </summary>
    public static double StudentT975(int df) => df switch
    {
        < 1 => throw new ArgumentOutOfRangeException(nameof(df), df, "at least one degree of freedom"),
        <= 30 => T975[df - 1],
        <= 40 => 2.021,
        <= 60 => 2.000,
        <= 120 => 1.980,
        _ => 1.960,
    };


    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    private static string Pct(double? v, string unit) => v is { } x ? x.ToString("+0.00;-0.00;0.00", CultureInfo.InvariantCulture) + unit : "-";

    private string DeltaPct => (Delta * 100).ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>The text report: the configuration, one tornado block per figure, the constants not run and how to replay.</summary>
    public string ToText(string machineArg)
    {
        var sb = new StringBuilder();
        int scale = BaseConfig.ScaleDivisor;
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"Sensitivity of the reproduction on {BaseConfig.Machine} ({BaseConfig.Workload}, {BaseConfig.Nodes}x{BaseConfig.CpusPerNode} CPUs, {RunConfig.FormatBytes(BaseConfig.MemoryBytes)} at scale 1/{scale}, {SeedStats.Describe(BaseConfig.Seed, Repeat)}; policies {string.Join(", ", Spec.Policies)})");
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"to each cost constant at -{DeltaPct}% and +{DeltaPct}%: {Perturbations.Count} constants, {CountRuns(Spec, Perturbations, Repeat)} runs.");
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"Figures as `reproduce` reports them (time and CPU seconds x{scale}); changes in percent of the baseline figure, in points (pt) for figures that are percentages.");
        if (Repeat > 1)
        {
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"Each figure is its mean over {Repeat} seeds; its noise band is t sd sqrt(2/{Repeat}), sd the baseline figure's standard deviation from seed to seed and t = {StudentT975(Repeat - 1):0.###} (Student's 97.5% quantile, {Repeat - 1} degrees of freedom): a swing marked ~ is within it.");
        }
        int w = Math.Max(24, Perturbations.Select(p => p.Constant.Length).DefaultIfEmpty(0).Max() + 2);
        foreach (FigureSensitivity f in Figures)
        {
            sb.AppendLine();
            string head = f.NoiseBand is { } nb
                ? string.Create(CultureInfo.InvariantCulture, $"{f.Figure}: {F(f.Baseline)} at baseline (sd {F(f.BaselineStdDev!.Value)} over the seeds; noise band {nb:0.00}{f.ChangeUnit})")
                : f.BaselineStdDev is { } bsd ? string.Create(CultureInfo.InvariantCulture, $"{f.Figure}: {F(f.Baseline)} at baseline (sd {F(bsd)} over the seeds)") : $"{f.Figure}: {F(f.Baseline)} at baseline";
            sb.AppendLine(head);
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"  {"constant".PadRight(w)}{"baseline",12}{"-" + DeltaPct + "%",12}{"figure",14}{"change",10}{"+" + DeltaPct + "%",12}{"figure",14}{"change",10}{"swing",10}");
            var unmoved = new List<string>();
            foreach (FigureChange c in f.Changes)
            {
                if (c.Swing == 0 && (c.ChangeLow is not null || c.ChangeHigh is not null))
                {
                    unmoved.Add(c.Constant);
                    continue;
                }
                Perturbation p = c.Perturbation;
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"  {c.Constant.PadRight(w)}{p.Baseline,12}{(p.Low is { } lo ? lo.ToString(CultureInfo.InvariantCulture) : "-"),12}{(c.FigureLow is { } fl ? F(fl) : "-"),14}{Pct(c.ChangeLow, f.ChangeUnit),10}{(p.High is { } hi ? hi.ToString(CultureInfo.InvariantCulture) : "-"),12}{(c.FigureHigh is { } fh ? F(fh) : "-"),14}{Pct(c.ChangeHigh, f.ChangeUnit),10}{c.Swing.ToString("0.00", CultureInfo.InvariantCulture) + f.ChangeUnit,10}{(c.WithinNoise == true ? " ~" : "")}");
            }
            if (unmoved.Count > 0)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  no change: {string.Join(", ", unmoved)}");
            }
        }
        sb.AppendLine();
        foreach (Perturbation p in Perturbations)
        {
            foreach (var (sign, value, note) in new[] { ("-", p.Low, p.LowNote), ("+", p.High, p.HighNote) })
            {
                if (note is not null)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"{p.Constant} {sign}{DeltaPct}%: {(value is null ? "not run, " : "")}{note}");
                }
            }
        }
        foreach (var (constant, reason) in Skipped)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"skipped {constant}: {reason}");
        }
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"Replay: shootdown {(ReproductionSpec.For(BaseConfig.Machine) is not null && !MachineSpec.IsFile(machineArg) ? "reproduce --machine" : $"compare --workload {BaseConfig.Workload} --policies {string.Join(',', Spec.Policies)} --machine")} {machineArg} --scale 1/{scale} --seed {BaseConfig.Seed}{(Repeat > 1 ? $" --repeat {Repeat}" : "")} [--cost NAME=VALUE, a value above]; --format json records the full base configuration.");
        return sb.ToString();
    }

    /// <summary>
    /// JSON: the base configuration (as `shootdown config --format json` prints it; the other policies
    /// differ only in policy_name), the policies, delta, the perturbations, the skipped constants and
    /// every figure with its tornado.
    /// </summary>
    public string ToJson()
    {
        static JsonNode? N(double? v) => v is { } x ? JsonValue.Create(x) : null;
        static JsonNode? L(long? v) => v is { } x ? JsonValue.Create(x) : null;
        var root = new JsonObject
        {
            ["machine"] = BaseConfig.Machine,
            ["workload"] = BaseConfig.Workload,
            ["scale_divisor"] = BaseConfig.ScaleDivisor,
            ["seed"] = BaseConfig.Seed,
            ["repeat"] = Repeat,
            ["policies"] = new JsonArray(Spec.Policies.Select(p => (JsonNode?)JsonValue.Create(p)).ToArray()),
            ["delta"] = Delta,
            ["base_config"] = JsonNode.Parse(ConfigFile.ToJson(BaseConfig)),
            ["perturbations"] = new JsonArray(Perturbations.Select(p => (JsonNode?)new JsonObject
            {
                ["constant"] = p.Constant,
                ["key"] = p.Key,
                ["baseline"] = p.Baseline,
                ["low"] = L(p.Low),
                ["high"] = L(p.High),
                ["low_note"] = p.LowNote,
                ["high_note"] = p.HighNote,
            }).ToArray()),
            ["skipped"] = new JsonArray(Skipped.Select(s => (JsonNode?)new JsonObject { ["constant"] = s.Constant, ["reason"] = s.Reason }).ToArray()),
            ["figures"] = new JsonArray(Figures.Select(f => (JsonNode?)new JsonObject
            {
                ["figure"] = f.Figure,
                ["baseline"] = f.Baseline,
                ["baseline_stddev"] = N(f.BaselineStdDev),
                ["noise_band"] = N(f.NoiseBand),
                ["change_unit"] = f.IsPercentage ? "points" : "percent",
                ["constants"] = new JsonArray(f.Changes.Select(c => (JsonNode?)new JsonObject
                {
                    ["constant"] = c.Constant,
                    ["low"] = L(c.Perturbation.Low),
                    ["high"] = L(c.Perturbation.High),
                    ["figure_low"] = N(c.FigureLow),
                    ["figure_high"] = N(c.FigureHigh),
                    ["change_low"] = N(c.ChangeLow),
                    ["change_high"] = N(c.ChangeHigh),
                    ["swing"] = c.Swing,
                    ["within_noise"] = c.WithinNoise,
                }).ToArray()),
            }).ToArray()),
        };
        return root.ToJsonString(JsonOptions);
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    /// <summary>CSV: one row per (figure, constant) in tornado order; empty cells for sides not run.</summary>
    public string ToCsv()
    {
        static string D(double? v) => v is { } x ? x.ToString("R", CultureInfo.InvariantCulture) : "";
        static string L(long? v) => v is { } x ? x.ToString(CultureInfo.InvariantCulture) : "";
        var sb = new StringBuilder("machine,figure,figure_baseline,constant,constant_baseline,constant_low,constant_high,figure_low,figure_high,change_low,change_high,change_unit,swing,figure_baseline_stddev,noise_band,within_noise\n");
        foreach (FigureSensitivity f in Figures)
        {
            foreach (FigureChange c in f.Changes)
            {
                Perturbation p = c.Perturbation;
                sb.Append(CultureInfo.InvariantCulture,
                    $"{BaseConfig.Machine},{f.Figure},{D(f.Baseline)},{c.Constant},{p.Baseline},{L(p.Low)},{L(p.High)},{D(c.FigureLow)},{D(c.FigureHigh)},{D(c.ChangeLow)},{D(c.ChangeHigh)},{(f.IsPercentage ? "points" : "percent")},{D(c.Swing)},{D(f.BaselineStdDev)},{D(f.NoiseBand)},{(c.WithinNoise is { } w ? (w ? "true" : "false") : "")}\n");
            }
        }
        return sb.ToString();
    }
}
