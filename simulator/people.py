"""Names and time zones the seeded sites draw from (fixed lists, so seeded sites repeat)."""

from __future__ import annotations

FIRST_NAMES = tuple(
    """Amara Bruno Chen Dalia Emeka Farah Gustav Hana Ines Jonas Kwame Leila Mateo Nadia Oskar
    Priya Quentin Rosa Sven Tamar Uma Viktor Wen Ximena Yusuf Zofia Aiko Bilal Carmen Dmitri Elif
    Felix Grace Hugo Ingrid Jamal Keiko Luca Maya Nikolai""".split()
)
LAST_NAMES = tuple(
    """Okafor Silva Wang Haddad Nwosu Rahman Lindqvist Sato Moreau Becker Mensah Karimi Garcia
    Petrova Nilsson Iyer Dubois Rossi Berg Cohen Patel Novak Liu Torres Demir Kowalska Tanaka Aziz
    Lopez Ivanov Yilmaz Schmidt Kim Laurent Hansen Ali Mori Conti Reyes Volkov""".split()
)
TIME_ZONES = tuple(
    """Europe/London Europe/Berlin Europe/Paris America/New_York America/Chicago
    America/Los_Angeles America/Sao_Paulo Asia/Tokyo Asia/Kolkata Asia/Singapore Australia/Sydney
    Africa/Lagos Africa/Nairobi Pacific/Auckland""".split()
)
