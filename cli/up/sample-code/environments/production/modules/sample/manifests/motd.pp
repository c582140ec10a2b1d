# A message of the day in the agent's own Puppet vardir
# (var/agents/<name>/puppet/var/sample/motd), and a notice in the run's report. Compiled by a
# Puppet server (baton up --puppetserver), the vardir is the agent's (the fact
# baton_puppet_vardir, lib/facter) and the motd says which server compiled it.
class sample::motd (
  String[1] $message = 'Managed by Baton',
) {
  $vardir = $facts['baton_puppet_vardir'] ? {
    String[1] => $facts['baton_puppet_vardir'],
    default   => $settings::vardir,
  }
  $dir = "${vardir}/sample"
  $compiled = $trusted['authenticated'] ? {
    'remote' => "Compiled by the Puppet server ${server_facts['servername']} (Puppet ${server_facts['serverversion']})\n",
    default  => '',
  }

  file { $dir:
    ensure => directory,
  }

  file { "${dir}/motd":
    ensure  => file,
    content => "${message}: ${trusted['certname']}, environment ${environment}\n${compiled}",
  }

  notify { "sample::motd: ${trusted['certname']} has its motd in ${dir}": }
}
