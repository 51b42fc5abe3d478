#!/usr/bin/perl
# A second DKIM verifier for the tests: Mail::DKIM (Debian's libmail-dkim-perl) reads a
# message on standard input, looks keys up at the DNS server named by its arguments
# (host port), and prints one line per signature: "<result> <algorithm> <selector>".
use strict;
use warnings;
use Mail::DKIM::DNS;
use Mail::DKIM::Verifier;
use Net::DNS::Resolver;

my ( $host, $port ) = @ARGV;
Mail::DKIM::DNS::resolver(
    Net::DNS::Resolver->new( nameservers => [$host], port => $port, recurse => 0 ) );
my $verifier = Mail::DKIM::Verifier->new();
binmode STDIN;
while (<STDIN>) {
    $verifier->PRINT($_);
}
$verifier->CLOSE();
for my $signature ( $verifier->signatures ) {
    printf "%s %s %s\n", $signature->result, $signature->algorithm, $signature->selector;
}
