using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Shootdown.Hardware;

namespace Shootdown.Reports;

/// <summary>Where `calibrate` starts: each constant's basis (a search replayable from what it started with), or its default (resuming the search behind the defaults).</summary>
public enum CalibrationStart
{
    Bases,
    Defaults,
}

/// <summary>
/// One evaluated point of the search: the constant moved (null for the start), its value, the loss,
/// the checks within, and the checks outside by name ("machine: check" for a reproduction's,
/// "crosscheck: check" for a cross-check's), so a step's trade is readable.
/// </summary>
public sealed record CalibrationStep(int Index, string? Constant, long? Value, double Loss, int Within, int Checks, bool Accepted)
{
    public IReadOnlyList<string> Outside { get; init; } = [];
}

/// <summary>
/// `shootdown calibrate`: a reproducible search for the kernel-path constants (the ones that are the
/// same on every machine, stated for a 3.4 GHz core and scaled by each machine's clock and work per clock) within their documented bounds, <see cref="CostModel.Bounds"/>: half to
/// twice each constant's physical basis. Every evaluation runs the whole reproduction of every
/// machine given (`calibrate`'s default: <see cref="ReproductionSpec.All"/>) with the candidate constants and the machines' own
/// hardware constants, and scores it by <see cref="Loss"/>: for each check outside its range, the
/// distance to the range in units of the range's half-width, squared, summed over the machines.
/// The search is coordinate descent on a logarithmic grid: for each constant in turn, the value one
/// step down and one step up (clamped to the bounds) are tried and the better one kept if it puts
/// more checks within their ranges, or as many with a lower loss; a sweep over all constants that changes nothing halves the step (in log space), from a
/// factor of √2 down to 2^(1/8). Deterministic: the same options give the same trajectory.
/// </summary>
public sealed class Calibration
{
    private Calibration(IReadOnlyList<ReproductionSpec> specs, IReadOnlyList<int> searchScales, ulong seed, IReadOnlyList<string> constants,
        CalibrationStart startFrom, IReadOnlyDictionary<string, long> start, IReadOnlyDictionary<string, long> best, IReadOnlyList<CalibrationStep> steps,
        IReadOnlyList<Reproduction> final, CrossCheck? finalCrossCheck, int repeat)
    {
        FinalCrossCheck = finalCrossCheck;
        Repeat = repeat;
        Specs = specs;
        StartFrom = startFrom;
        SearchScales = searchScales;
        Seed = seed;
        Constants = constants;
        Start = start;
        Best = best;
        Steps = steps;
        Final = final;
    }

    public IReadOnlyList<ReproductionSpec> Specs { get; }

    /// <summary>Scale divisor of each machine's runs during the search (the final check runs at the specs' own scales).</summary>
    public IReadOnlyList<int> SearchScales { get; }

    public ulong Seed { get; }

    /// <summary>Seeds each point is evaluated over, seed..seed+Repeat−1: the checks judge means over them (1: one run per policy).</summary>
    public int Repeat { get; }

    /// <summary>The constants searched, in search order.</summary>
    public IReadOnlyList<string> Constants { get; }

    /// <summary>Whether the search started from the bases or from the defaults.</summary>
    public CalibrationStart StartFrom { get; }

    public IReadOnlyDictionary<string, long> Start { get; }

    public IReadOnlyDictionary<string, long> Best { get; }

    public IReadOnlyList<CalibrationStep> Steps { get; }

    /// <summary>The best constants' reproductions at each machine's default scale.</summary>
    public IReadOnlyList<Reproduction> Final { get; }

    /// <summary>The cross-checks at the best constants, when the search scored them (`--crosschecks`); null otherwise.</summary>
    public CrossCheck? FinalCrossCheck { get; }

    /// <summary>
    /// The search's score of reproductions: per check outside its range, (distance to the range /
    /// half the range's width)², summed. 0 when every check holds.
    /// </summary>
    public static double Loss(IEnumerable<Reproduction> reps)
    {
        double loss = 0;
        foreach (Reproduction r in reps)
        {
            foreach (var (check, row) in r.Spec.Checks.Zip(r.Rows()))
            {
                if (row.Within || !check.HasPublished)
                {
                    continue;
                }
                double half = (check.Max - check.Min) / 2;
                double d = row.Simulated < check.Min ? check.Min - row.Simulated : row.Simulated - check.Max;
                loss += half > 0 ? (d / half) * (d / half) : 1;
            }
        }
        return double.IsNaN(loss) ? double.PositiveInfinity : loss;
    }

    /// <summary>
    /// The search's score of cross-checks (`calibrate --crosschecks`): per check outside its target,
    /// the distance to the target squared — for a positive target (a time, a ratio, a share, all
    /// widened by a factor of 2 around the published figure) in factors of 2, log2(min / simulated)
    /// or log2(simulated / max), a simulated value below 1/1024 of the minimum (0 included) counting as that;
    /// for a target that reaches 0 or below (a change held in points: the IPI count's, or one between
    /// two kernels) in units of half the target's width, as <see cref="Loss(IEnumerable{Reproduction})"/> does.
    /// </summary>
    public static double Loss(CrossCheck cc)
    {
        double loss = 0;
        foreach (var (spec, row) in cc.Checks.Zip(cc.Rows))
        {
            if (row.Within)
            {
                continue;
            }
            double d;
            if (spec.Min > 0)
            {
                double sim = Math.Max(row.Simulated, spec.Min / 1024);
                d = Math.Log2(sim < spec.Min ? spec.Min / sim : sim / spec.Max);
            }
            else
            {
                double half = (spec.Max - spec.Min) / 2;
                double dist = row.Simulated < spec.Min ? spec.Min - row.Simulated : row.Simulated - spec.Max;
                d = half > 0 ? dist / half : 1;
            }
            loss += d * d;
        }
        return double.IsNaN(loss) ? double.PositiveInfinity : loss;
    }

    /// <summary>Runs the cross-checks with the kernel-path constants of <paramref name="point"/> on every run's machine.</summary>
    private static CrossCheck EvaluateCrossChecks(IReadOnlyList<CrossCheckSpec> checks, IReadOnlyList<CrossCheckRun> runs, ulong seed,
        IReadOnlyDictionary<string, long> point, int jobs, int repeat) =>
        CrossCheck.Run(checks, runs, seed, jobs, c =>
        {
            foreach (var (name, value) in point)
            {
                c = c.With(name, value);
            }
            return c;
        }, repeat: repeat);

    private static IReadOnlyList<Reproduction> Evaluate(IReadOnlyList<ReproductionSpec> specs, IReadOnlyList<int> scales, ulong seed,
        IReadOnlyList<IReadOnlyDictionary<string, long>> points, int jobs, int repeat)
    {
        var sets = new List<(RunConfig, IReadOnlyList<string>)>();
        foreach (var point in points)
        {
            for (int m = 0; m < specs.Count; m++)
            {
                RunConfig cfg = RunConfig.Create(machine: specs[m].Machine, scaleDivisor: scales[m], workload: ReproductionSpec.Workload, policy: specs[m].Policies[0], seed: seed);
                CostModel costs = cfg.Costs;
                foreach (var (name, value) in point)
                {
                    costs = costs.With(name, value);
                }
                costs.Validate();
                sets.Add((cfg with { Costs = costs }, specs[m].Policies));
            }
        }
        IReadOnlyList<Comparison> runs = Comparison.RunMany(sets, repeat: repeat, parallelism: jobs);
        var reps = new Reproduction[runs.Count];
        for (int i = 0; i < runs.Count; i++)
        {
            reps[i] = new Reproduction(specs[i % specs.Count], runs[i]);
        }
        return reps;
    }

    /// <summary>The default searched constants: every kernel-path constant with bounds that the seed's comparison uses (not <see cref="CostModel.ReadPathNames"/>), in the cost table's order.</summary>
    public static IReadOnlyList<string> DefaultConstants => CostModel.Bounds.Keys.Except(CostModel.ReadPathNames).ToArray();

    /// <summary>
    /// Checks the search's options before any run (the CLI calls it before its progress display):
    /// at least one machine, a positive scale factor and evaluation budget, known constants that
    /// have bounds, each named once, and a search scale each machine can run at. Returns the
    /// constants' canonical names and each machine's scale divisor during the search.
    /// </summary>
    public static (IReadOnlyList<string> Constants, IReadOnlyList<int> SearchScales) Plan(IReadOnlyList<ReproductionSpec> specs, IReadOnlyList<string> constants,
        int searchScaleFactor, int maxEvaluations)
    {
        if (specs.Count == 0)
        {
            throw new ConfigException("calibrate needs at least one machine to reproduce");
        }
        if (searchScaleFactor < 1)
        {
            throw new ConfigException($"--search-scale-factor must be a positive integer, got {searchScaleFactor}");
        }
        if (maxEvaluations < 1)
        {
            throw new ConfigException($"--max-evaluations must be a positive integer, got {maxEvaluations}");
        }
        var names = new List<string>();
        foreach (string c in constants)
        {
            string n = CostModel.Canonical(c) ?? throw CostModel.Unknown(c);
            if (!CostModel.Bounds.ContainsKey(n))
            {
                string why = CostModel.IsHardware(n)
                    ? "is a hardware constant (each machine file gives it, with its source); the search moves kernel-path constants only"
                    : "has no documented bounds, so the search does not move it";
                throw new ConfigException($"cost constant {n} {why}; searchable: {string.Join(", ", CostModel.Bounds.Keys)}");
            }
            if (names.Contains(n))
            {
                throw new ConfigException($"cost constant {n} appears twice in the constants to search");
            }
            names.Add(n);
        }
        var scales = new int[specs.Count];
        for (int m = 0; m < specs.Count; m++)
        {
            long scale = (long)specs[m].DefaultScale * searchScaleFactor;
            if (scale > RunConfig.MaxScaleDivisor)
            {
                throw new ConfigException($"--search-scale-factor {searchScaleFactor} would run {specs[m].Machine} at 1/{scale}; N of 1/N is at most {RunConfig.MaxScaleDivisor}");
            }
            scales[m] = (int)scale;
            try
            {
                RunConfig.Create(machine: specs[m].Machine, scaleDivisor: scales[m], workload: ReproductionSpec.Workload, policy: specs[m].Policies[0]);
            }
            catch (ConfigException e)
            {
                throw new ConfigException($"--search-scale-factor {searchScaleFactor} runs {specs[m].Machine} at 1/{scales[m]}: {e.Message}", e.Key);
            }
        }
        return (names, scales);
    }

    /// <summary>
    /// Runs the search from the bases (<see cref="CostModel.Bounds"/>; the defaults in
    /// <see cref="CostModel"/> are a search's result) of <paramref name="constants"/>, or from their
    /// defaults with <paramref name="startFrom"/> = <see cref="CalibrationStart.Defaults"/> (to go on
    /// from where the search behind the defaults stopped), the same on
    /// every machine, each machine with its own hardware constants;
    /// <paramref name="searchScaleFactor"/> multiplies each machine's scale divisor during the search
    /// (1 = the specs' scales). At most <paramref name="maxEvaluations"/> points are evaluated during
    /// the search (the start included), then the best point once more at the specs' own scales
    /// (reusing the search's runs when the factor is 1). <paramref name="jobs"/> runs go at once
    /// (0: one per host core); the result does not depend on it. <paramref name="progress"/> gets each
    /// step as it is taken. With <paramref name="repeat"/> N &gt; 1 every point runs with seeds
    /// seed..seed+N−1 and is judged on the means (as `reproduce --repeat` judges them), so the search
    /// does not chase one seed's draw. Throws <see cref="ConfigException"/> for what <see cref="Plan"/> refuses.
    /// </summary>
    public static Calibration Run(IReadOnlyList<ReproductionSpec> specs, ulong seed, IReadOnlyList<string> constants, int searchScaleFactor,
        int maxEvaluations, int jobs, Action<CalibrationStep>? progress = null, CalibrationStart startFrom = CalibrationStart.Bases,
        IReadOnlyList<CrossCheckSpec>? crossChecks = null, IReadOnlyList<CrossCheckRun>? crossCheckRuns = null, int repeat = 1)
    {
        if (repeat < 1)
        {
            throw new ConfigException($"--repeat must be at least 1, got {repeat}");
        }
        var (names, scales) = Plan(specs, constants, searchScaleFactor, maxEvaluations);
        IReadOnlyList<CrossCheckSpec> xs = crossChecks ?? [];
        IReadOnlyList<CrossCheckRun> xruns = crossCheckRuns ?? CrossCheck.Runs;
        // The cross-checks, when scored, run at their own scales at every point (they are small);
        // the point's kernel-path constants go to every run's machine, whose hardware stays its own.
        CrossCheck? Cross(IReadOnlyDictionary<string, long> point) => xs.Count == 0 ? null : EvaluateCrossChecks(xs, xruns, seed, point, jobs, repeat);
        double LossOf(IReadOnlyList<Reproduction> reps, CrossCheck? cc) => Loss(reps) + (cc is null ? 0 : Loss(cc));
        // By default from each constant's basis, not from the defaults: the defaults are a search's
        // result, and the search must be replayable from what it started with. From the defaults it
        // goes on from that result (each default lies within its bounds: a test checks).
        var current = names.ToDictionary(n => n, n => startFrom == CalibrationStart.Defaults ? Default(n) : CostModel.Bounds[n].Basis);
        var start = new Dictionary<string, long>(current);
        var steps = new List<CalibrationStep>();
        IReadOnlyList<string> Outside(IReadOnlyList<Reproduction> reps, CrossCheck? cc) =>
            reps.SelectMany(r => r.Rows().Where(x => !x.Within).Select(x => $"{r.Spec.Machine}: {x.Check}"))
                .Concat(cc?.Rows.Where(x => !x.Within).Select(x => $"crosscheck: {x.Check}") ?? []).ToArray();
        (int within, int total) Count(IReadOnlyList<Reproduction> reps, CrossCheck? cc) =>
            (reps.Sum(r => r.Rows().Count(x => x.Within)) + (cc?.Rows.Count(x => x.Within) ?? 0), reps.Sum(r => r.Rows().Count) + (cc?.Rows.Count ?? 0));
        var first = Evaluate(specs, scales, seed, [current], jobs, repeat);
        CrossCheck? firstCross = Cross(current);
        IReadOnlyList<Reproduction> currentReps = first;
        CrossCheck? currentCross = firstCross;
        double currentLoss = LossOf(first, firstCross);
        var (w0, t0) = Count(first, firstCross);
        int currentWithin = w0;
        var step0 = new CalibrationStep(0, null, null, currentLoss, w0, t0, true) { Outside = Outside(first, firstCross) };
        steps.Add(step0);
        progress?.Invoke(step0);
        double logStep = Math.Log(2) / 2; // a factor of sqrt(2)
        int evaluations = 1;
        while (logStep >= Math.Log(2) / 8 - 1e-12 && evaluations < maxEvaluations)
        {
            bool moved = false;
            foreach (string n in names)
            {
                if (evaluations >= maxEvaluations)
                {
                    break;
                }
                var (min, max) = CostModel.Bounds[n].Range;
                long v = current[n];
                var candidates = new[] { Math.Exp(-logStep), Math.Exp(logStep) }
                    .Select(f => Math.Clamp((long)Math.Round(v * f, MidpointRounding.AwayFromZero), min, max))
                    .Where(x => x != v).Distinct().Take(maxEvaluations - evaluations).ToArray();
                if (candidates.Length == 0)
                {
                    continue;
                }
                var points = candidates.Select(x => (IReadOnlyDictionary<string, long>)new Dictionary<string, long>(current) { [n] = x }).ToArray();
                IReadOnlyList<Reproduction> reps = Evaluate(specs, scales, seed, points, jobs, repeat);
                CrossCheck?[] crosses = points.Select(Cross).ToArray();
                evaluations += candidates.Length;
                int bestIdx = -1;
                double bestLoss = currentLoss;
                int bestWithin = currentWithin;
                var results = new List<(long Value, double Loss, int Within, int Total, IReadOnlyList<string> Out)>();
                for (int i = 0; i < candidates.Length; i++)
                {
                    var slice = reps.Skip(i * specs.Count).Take(specs.Count).ToArray();
                    double l = LossOf(slice, crosses[i]);
                    var (w, t) = Count(slice, crosses[i]);
                    results.Add((candidates[i], l, w, t, Outside(slice, crosses[i])));
                    // More checks within first; the loss breaks ties (a move that gains on one
                    // machine's far-off figures must not cost the other machine a check).
                    if (w > bestWithin || (w == bestWithin && l < bestLoss - 1e-9))
                    {
                        bestLoss = l;
                        bestWithin = w;
                        bestIdx = i;
                    }
                }
                for (int i = 0; i < results.Count; i++)
                {
                    var s = new CalibrationStep(steps.Count, n, results[i].Value, results[i].Loss, results[i].Within, results[i].Total, i == bestIdx) { Outside = results[i].Out };
                    steps.Add(s);
                    progress?.Invoke(s);
                }
                if (bestIdx >= 0)
                {
                    current[n] = candidates[bestIdx];
                    currentLoss = bestLoss;
                    currentWithin = bestWithin;
                    currentReps = reps.Skip(bestIdx * specs.Count).Take(specs.Count).ToArray();
                    currentCross = crosses[bestIdx];
                    moved = true;
                }
            }
            if (!moved)
            {
                logStep /= 2;
            }
        }
        IReadOnlyList<Reproduction> final = searchScaleFactor == 1
            ? currentReps // the search ran at the specs' scales: the same runs, deterministic
            : Evaluate(specs, specs.Select(s => s.DefaultScale).ToArray(), seed, [current], jobs, repeat);
        return new Calibration(specs, scales, seed, names, startFrom, start, current, steps, final, currentCross, repeat);
    }

    /// <summary>"bases" or "defaults", as `--start` takes it.</summary>
    public string StartName => StartFrom == CalibrationStart.Defaults ? "defaults" : "bases";

    /// <summary>The start `--start` names ("bases" or "defaults", as <see cref="StartName"/> prints it); throws <see cref="ConfigException"/> for anything else.</summary>
    public static CalibrationStart ParseStart(string name) => name switch
    {
        "bases" => CalibrationStart.Bases,
        "defaults" => CalibrationStart.Defaults,
        _ => throw new ConfigException($"unknown --start '{ParseArg.Clip(name)}'; allowed: bases, defaults"),
    };

    private static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>
    /// The `--cost` arguments that replay the best point: every searched constant whose best value
    /// differs from the default `reproduce` would run with (the search may start from the bases, the
    /// default `--start`, which need not be the defaults, so a constant the search left at its basis
    /// may still need one).
    /// </summary>
    public string CostArguments => string.Join(" ", Constants.Where(n => Best[n] != Default(n)).Select(n => $"--cost {CostModel.SnakeCase(n)}={Best[n]}"));

    /// <summary>A kernel-path constant's default value (every machine has the same, stated for the reference core; a machine's core clock and work per clock scale it when it runs).</summary>
    private static long Default(string name) => CostModel.Xeon2015.Get(name);

    /// <summary>
    /// The `reproduce` command line(s) that replay <see cref="Final"/>: one for every machine when the
    /// search covered <see cref="ReproductionSpec.All"/>, else one per machine (--machine); the seed
    /// always, as `reproduce` defaults to 1.
    /// </summary>
    public IReadOnlyList<string> ReplayCommands
    {
        get
        {
            string tail = $"--seed {Seed}{(Repeat > 1 ? $" --repeat {Repeat}" : "")}{(CostArguments.Length > 0 ? " " + CostArguments : "")}";
            string[] reproduce = Specs.Select(s => s.Machine).SequenceEqual(ReproductionSpec.All.Select(s => s.Machine))
                ? [$"shootdown reproduce {tail}"]
                : Specs.Select(s => $"shootdown reproduce --machine {s.Machine} {tail}").ToArray();
            return FinalCrossCheck is null ? reproduce : [.. reproduce, $"shootdown crosscheck {tail}"];
        }
    }

    /// <summary>Whether every check of every machine holds at the best constants, at the specs' scales, and every cross-check when the search scored them (`calibrate` exits 5 otherwise).</summary>
    public bool AllWithin => Final.All(r => r.AllWithin) && (FinalCrossCheck?.AllWithin ?? true);

    public string ToText()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"Calibration of {Constants.Count} kernel-path constants within their bounds (README, \"Cost model\") against {string.Join(" and ", Specs.Select(s => s.Machine))}, from their {StartName}; search at scale {string.Join(", ", Specs.Zip(SearchScales).Select(x => $"1/{x.Second} ({x.First.Machine})"))}, {SeedStats.Describe(Seed, Repeat)}.");
        sb.AppendLine("Kept: a step that puts more checks within, or as many with a lower loss. Loss: per check outside its range, (distance / half the range)^2, summed over the machines.");
        if (FinalCrossCheck is not null)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"Scored with the {FinalCrossCheck.Rows.Count} cross-checks (`shootdown crosscheck`, at their own scales): each outside its target adds (factors of 2 to the target)^2, or (distance / half the target)^2 for a target in points; their checks count among those within.");
        }
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"step",5}  {"constant",-22}{"value",10}{"loss",12}{"within",10}  kept");
        foreach (CalibrationStep s in Steps)
        {
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{s.Index,5}  {(s.Constant ?? "(start)"),-22}{(s.Value is { } v ? v.ToString(CultureInfo.InvariantCulture) : "-"),10}{F(s.Loss),12}{$"{s.Within}/{s.Checks}",10}  {(s.Accepted ? "yes" : "")}");
        }
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"constant",-22}{"start",10}{"best",10}{"bounds",20}");
        foreach (string n in Constants)
        {
            var (min, max) = CostModel.Bounds[n].Range;
            sb.AppendLine(CultureInfo.InvariantCulture, $"{n,-22}{Start[n],10}{Best[n],10}{$"{min}..{max}",20}");
        }
        sb.AppendLine();
        foreach (Reproduction r in Final)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"At the best constants, scale 1/{r.Scale}:");
            sb.Append(r.ToText());
            sb.AppendLine();
        }
        if (FinalCrossCheck is { } cc)
        {
            sb.AppendLine("At the best constants:");
            sb.Append(cc.ToText());
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"Cross-check loss: {F(Loss(cc))}.");
        }
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"Loss at the reproduce scales: {F(Loss(Final))}; {Final.Sum(r => r.Rows().Count(x => x.Within))} of {Final.Sum(r => r.Rows().Count)} checks within. Replay: {string.Join("; ", ReplayCommands)}");
        return sb.ToString();
    }

    /// <summary>CSV: one row per step, index,constant,value,loss,within,checks,kept (the start: empty constant and value).</summary>
    public string ToCsv()
    {
        var sb = new StringBuilder("index,constant,value,loss,within,checks,kept\n");
        foreach (CalibrationStep s in Steps)
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"{s.Index},{s.Constant},{(s.Value is { } v ? v.ToString(CultureInfo.InvariantCulture) : "")},{s.Loss.ToString("R", CultureInfo.InvariantCulture)},{s.Within},{s.Checks},{(s.Accepted ? "true" : "false")}\n");
        }
        return sb.ToString();
    }

    public string ToJson()
    {
        var root = new JsonObject
        {
            ["machines"] = new JsonArray(Specs.Select(s => (JsonNode?)JsonValue.Create(s.Machine)).ToArray()),
            ["search_scale_divisors"] = new JsonArray(SearchScales.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
            ["seed"] = Seed,
            ["repeat"] = Repeat,
            ["start_from"] = StartName,
            ["constants"] = new JsonArray(Constants.Select(n => (JsonNode?)new JsonObject
            {
                ["constant"] = n,
                ["key"] = CostModel.SnakeCase(n),
                ["basis"] = CostModel.Bounds[n].Basis,
                ["min"] = CostModel.Bounds[n].Range.Min,
                ["max"] = CostModel.Bounds[n].Range.Max,
                ["start"] = Start[n],
                ["best"] = Best[n],
            }).ToArray()),
            ["steps"] = new JsonArray(Steps.Select(s => (JsonNode?)new JsonObject
            {
                ["index"] = s.Index,
                ["constant"] = s.Constant,
                ["value"] = s.Value,
                ["loss"] = s.Loss,
                ["within"] = s.Within,
                ["checks"] = s.Checks,
                ["kept"] = s.Accepted,
                ["outside"] = new JsonArray(s.Outside.Select(o => (JsonNode?)JsonValue.Create(o)).ToArray()),
            }).ToArray()),
            ["final_loss"] = Loss(Final),
            ["all_within"] = AllWithin,
            ["replay"] = new JsonArray(ReplayCommands.Select(c => (JsonNode?)JsonValue.Create(c)).ToArray()),
            ["final"] = new JsonArray(Final.Select(r => (JsonNode?)r.ToJsonNode()).ToArray()),
            ["crosscheck_loss"] = FinalCrossCheck is { } cc ? Loss(cc) : null,
            ["crosschecks"] = FinalCrossCheck?.ToJsonNode(),
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
