namespace MLNetGpt.Bench;
internal static class ProbeTmp
{
    public static void Run(string folder)
    {
        foreach (var f in folder.Split(','))
        {
            using var model = GptModel.Open(f, new GptModelOptions { IntraOpThreads = 2 });
            Console.WriteLine($"{Path.GetFileName(f)}: {MLNetGpt.Generation.SpeculationProbe.Difference(model.Engine.Backend, model.Info):E2}");
        }
    }
}
