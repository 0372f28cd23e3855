using VelozBackupAgent.Host.Cli;

namespace VelozBackupAgent.Tests.Cli;

/// <summary>The completion's question without the configuration overrides typed on the line.</summary>
public sealed class CompletionRequestTests
{
    [Theory]
    [InlineData("restore da", "restore da")]
    [InlineData("--Backup:LocalRoot=/srv/backup restore da", "restore da")]
    [InlineData("restore --Backup:LocalRoot /srv/backup da", "restore da")]
    [InlineData("backup --backup:nodename=n1 --Backup:S3:Enabled=false ", "backup ")]
    [InlineData("list --target ", "list --target ")]
    [InlineData("", "")]
    public void Overrides_before_the_cursor_are_taken_out_and_the_position_follows(string line, string expected)
    {
        var args = VelozCli.CompletionRequest([$"[suggest:{line.Length}]", line]);
        args.Should().Equal($"[suggest:{expected.Length}]", expected);
    }

    [Fact]
    public void What_stands_after_the_cursor_is_kept()
    {
        VelozCli.CompletionRequest(["[suggest:32]", "--Backup:LocalRoot=/x restore da --yes"])
            .Should().Equal("[suggest:10]", "restore da --yes");
    }

    [Fact]
    public void The_cursor_in_an_overrides_value_completes_nothing_of_ours()
    {
        VelozCli.CompletionRequest(["[suggest:30]", "restore --Backup:LocalRoot /sr"])[1].Should().Be("--Backup:");
    }

    [Fact]
    public void A_directive_without_a_position_means_the_end_of_the_line()
    {
        VelozCli.CompletionRequest(["[suggest]", "--Backup:LocalRoot=/x backup "]).Should().Equal("[suggest:7]", "backup ");
    }
}
