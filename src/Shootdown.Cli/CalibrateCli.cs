using System.CommandLine;
using System.Globalization;
using Shootdown.Hardware;
using Shootdown.Reports;
using Spectre.Console;

namespace Shootdown.Cli;

/// <summary>`shootdown calibrate`: the search of the kernel-path constants within their bounds against `reproduce`'s checks.</summary>
internal static class CalibrateCli
{
    public static Command Build()
    {
        string machines = string.Join(", ", ReproductionSpec.All.Select(s => s.Machine));
        var machine = new Option<string[]>("--machine") { Description = $"Machine whose reproduction the search scores ({machines}); repeatable or a comma list [default: every one]", AllowMultipleArgumentsPerToken = false };
        var constants = new Option<string?>("--constants") { HelpName = "NAME,...", Description = $"Kernel-path constants to search (names or snake_case keys; only constants with bounds) [default: {string.Join(",", Calibration.DefaultConstants)}]" };
        var factor = new Option<string>("--search-scale-factor") { HelpName = "N", Description = "Run the search at each machine's reproduce scale divided by N (gorman-4node: 1/16 x 4 = 1/64); the final check runs at the reproduce scales", DefaultValueFactory = _ => "4" };
        var maxEvaluations = new Option<string>("--max-evaluations") { HelpName = "N", Description = "Points of the cost model to evaluate at most during the search, the start included (each runs every machine's reproduction)", DefaultValueFactory = _ => "200" };
        var seed = new Option<string>("--seed") { Description = "Seed of every run (the first seed with --repeat)", DefaultValueFactory = _ => "1" };
        var repeat = new Option<string>("--repeat") { Description = "Seeds per point, seed..seed+N-1: the checks judge each point's means over them, as `reproduce --repeat` does (N times the runs)", DefaultValueFactory = _ => "1" };
        var jobs = new Option<string>("--jobs") { Description = "Runs at once on the host's cores (the result does not depend on it)", DefaultValueFactory = _ => Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture) };
        var format = new Option<string>("--format") { Description = "Output format: table, json or csv (csv: one row per step)", DefaultValueFactory = _ => "table" };
        var progress = new Option<bool>("--progress") { Description = "Show the search's progress on stderr even with --format json or csv" };
        var start = new Option<string>("--start") { Description = "Start the search from each constant's basis, or from its default (to go on from the search behind the defaults): bases or defaults", DefaultValueFactory = _ => "bases" };
        var crosschecks = new Option<bool>("--crosschecks") { Description = "Also score `shootdown crosscheck`'s published figures outside the seed's comparison at every point (their runs at their own scales); their checks count among those within" };
        var cmd = new Command("calibrate", "Search the kernel-path cost constants, within half to twice their basis, for the values that best meet `reproduce`'s checks on every machine");
        foreach (Option o in new Option[] { machine, constants, factor, maxEvaluations, seed, repeat, jobs, format, progress, start, crosschecks })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            string f = pr.GetValue(format)!;
            if (f is not ("table" or "json" or "csv"))
            {
                throw new ConfigException($"unknown --format '{ParseArg.Clip(f)}'; allowed: table, json, csv");
            }
            CalibrationStart from = Calibration.ParseStart(pr.GetValue(start)!);
            IReadOnlyList<ReproductionSpec> specs = ParseMachines(pr.GetValue(machine) ?? []);
            IReadOnlyList<string> names = pr.GetValue(constants) is { } cs ? SensitivityCli.ParseConstants(cs) : Calibration.DefaultConstants;
            int n = (int)ParseArg.Integer(pr.GetValue(factor)!, "--search-scale-factor", 1, RunConfig.MaxScaleDivisor);
            int max = (int)ParseArg.Integer(pr.GetValue(maxEvaluations)!, "--max-evaluations", 1, 100_000);
            ulong sd = ParseArg.Unsigned(pr.GetValue(seed)!, "--seed");
            int seeds = (int)ParseArg.Integer(pr.GetValue(repeat)!, "--repeat", 1, 1000);
            int j = (int)ParseArg.Integer(pr.GetValue(jobs)!, "--jobs", 1, 1024);
            // Refuse constants without bounds and a search scale a machine cannot run at before any run.
            var (_, scales) = Calibration.Plan(specs, names, n, max);
            string where = string.Join(", ", specs.Zip(scales, (s, d) => $"{s.Machine} 1/{d}"));
            Calibration result = WithStatus(f == "table" || pr.GetValue(progress), $"calibrate {where}", max,
                onStep => Calibration.Run(specs, sd, names, n, max, j, onStep, from, pr.GetValue(crosschecks) ? CrossCheck.All : null, repeat: seeds));
            Console.Out.Write(f switch
            {
                "json" => result.ToJson() + "\n",
                "csv" => result.ToCsv(),
                _ => result.ToText(),
            });
            return result.AllWithin ? ShootdownCli.ExitOk : ShootdownCli.ExitOutOfTolerance;
        });
        return cmd;
    }

    /// <summary>The machines of --machine (repeated, or comma lists), each once, in the order given; every machine `reproduce` covers when none is given.</summary>
    internal static IReadOnlyList<ReproductionSpec> ParseMachines(IReadOnlyList<string> values)
    {
        if (values.Count == 0)
        {
            return ReproductionSpec.All;
        }
        var specs = new List<ReproductionSpec>();
        foreach (string v in values)
        {
            string[] items = v.Split(',', StringSplitOptions.TrimEntries);
            if (items.Any(string.IsNullOrEmpty))
            {
                throw new ConfigException($"malformed --machine '{ParseArg.Clip(v)}'; expected a machine or a comma-separated list such as gorman-4node,gorman-1node");
            }
            foreach (string item in items)
            {
                ReproductionSpec spec = ReproductionSpec.For(item)
                    ?? throw new ConfigException($"calibrate has no reproduction of machine '{ParseArg.Clip(item)}'; allowed: {string.Join(", ", ReproductionSpec.All.Select(s => s.Machine))} (default: every one)");
                if (specs.Contains(spec))
                {
                    throw new ConfigException($"machine {spec.Machine} appears twice in --machine");
                }
                specs.Add(spec);
            }
        }
        return specs;
    }

    /// <summary>
    /// Does <paramref name="work"/> under a status line on stderr (when <paramref name="show"/> and
    /// stderr is a terminal): the evaluations done of at most <paramref name="maxEvaluations"/> and
    /// the best loss so far; the final check follows the last step.
    /// </summary>
    private static T WithStatus<T>(bool show, string label, int maxEvaluations, Func<Action<CalibrationStep>?, T> work) =>
        ShootdownCli.UnderProgressBar(show, Markup.Escape(label), maxEvaluations,
            [new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new ElapsedTimeColumn()],
            task =>
            {
                if (task is null)
                {
                    return work(null);
                }
                double best = double.PositiveInfinity;
                return work(s =>
                {
                    best = Math.Min(best, s.Loss);
                    task.Value = s.Index + 1;
                    task.Description = Markup.Escape($"{label}: {s.Index + 1}/{maxEvaluations}, best loss {best.ToString("0.###", CultureInfo.InvariantCulture)}");
                });
            });
}
